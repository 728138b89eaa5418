/**
 * `stage2 torture`: rounds of random operation mixes over a VM with every checker on (src/torture).
 * Thin: parse, call runTorture, print. Exit 0 when every check passed, 1 on a violation (with the
 * seed, the replay command line and the replay file), 2 on bad input.
 */
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { STRATEGIES, type StrategyName } from "../../kvm/reclaim/strategy.js";
import {
  checkScheduleFile,
  DEFAULT_DEATH_RATE,
  runTorture,
  type ScheduleFile,
  type TortureOptions,
  type TortureSummary,
} from "../../torture/run.js";
import { type CliIo, type Command, UsageError } from "../command.js";
import { chooseSeed, parseChoice, parseFlags, parseIntIn, parseRatio, quote } from "../parse.js";

const USAGE = `Usage: stage2 torture [options]

Rounds of random operation mixes over a fresh VM each (teardown and recreate between rounds),
every checker on: vCPU workers take read and write faults through the MMU model, collapse ranges
into blocks and walk the table, while the host unmaps (MMU notifier), write-protects, turns dirty
logging on and off (get and clear the log, eager splits), tests and clears young bits, and moves,
deletes and re-creates a memslot. Strategies (per-table, per-subtree, bounded, batched) and RCU
flavors (mb, qsbr) take turns unless pinned. Checkers: the MMU model's (break-before-make, stale
TLB, use after free, dirty log), the walkers' use-after-free and corruption checks on the debug
pool, the RCU age check (a reader inside a table 2+ grace periods after its unlink), the refcount
audit, and the leak check after teardown. A stat line every 2 s (stderr with --json).

Options:
  --seconds N       time budget; no round starts after it (default 10 unless --rounds is given;
                    at least one round runs)
  --rounds N        stop after N rounds (with --seconds: whichever comes first)
  --seed S          seed, 0..4294967295 (default: STAGE2_SEED or random); printed first
  --vcpus N         vCPU worker threads, 1..16 (default 2)
  --ops N           operations per vCPU per round, 1..1000000 (default 20000; controlled: 400)
  --strategy P      per-table | per-subtree | bounded | batched | all (default all)
  --rcu F           mb | qsbr | all (default all)
  --alloc-fail R    injected allocation failure rate at alloc.page and memcache.topup, 0..1, in
                    the vCPUs and the host thread (default 0): faults report ENOMEM and retry,
                    host eager splits stop early (logging goes on); nothing may leak
  --race-spins N    delay spins at walk.table-entered and bbm.locked, 0..100000 (default 500)
  --deaths R        chance per round, 0..1, that one vCPU is killed mid-run (default 0.2):
                    terminated or crashed (process.exit) inside a read-side section, holding
                    mmu_lock for read, between break and make, inside a fault, or holding
                    another vCPU's TLB while completing a TLBI; the others and the host go on,
                    and the death watch must reap it with nothing lost
  --deaths-anytime  also terminate victims at a random moment (off by default: every gap it
                    found is fixed and 120 runs since were clean, but it would change every
                    seed's death plan; see RELIABILITY.md)
  --round R         run only round R of the seed (what a failing run prints for replay)
  --controlled      run the rounds under the controlled scheduler: the vCPUs, a host thread
                    (ops/8 host operations) and the RCU callback worker take turns, one at a
                    time, as the seed decides; each round's schedule hash printed; replays
                    exactly, injected failures included
  --pct-depth D     with --controlled: PCT with depth D, 1..64 (default: the random strategy)
  --replay FILE     replay a schedule file a failing controlled run wrote
  --log-dir DIR     where replay files go (default: the system temp directory)
  --json            one JSON object: seed, operations, violations, injected, races, ...

Exit: 0 every check passed; 1 a violation (the seed, the command line that replays the failing
round, and the path of its op log or schedule are printed); 2 bad input.`;

/** Test-only settings a command can be built with; no flag reaches them. */
export interface TortureTestOnly {
  /** VmOptions.testOnly.bugs for every round (a planted bug). */
  bugs?: number;
  /** VmOptions.testOnly.noDeathRecovery for every round (the deaths' negative control). */
  noDeathRecovery?: boolean;
}

function str(values: Record<string, unknown>, name: string): string | undefined {
  return values[name] as string | undefined;
}

function parseOptions(argv: string[]): { o: TortureOptions; json: boolean } {
  const { values } = parseFlags(argv, {
    seconds: { type: "string" },
    rounds: { type: "string" },
    seed: { type: "string" },
    vcpus: { type: "string" },
    ops: { type: "string" },
    strategy: { type: "string" },
    rcu: { type: "string" },
    "alloc-fail": { type: "string" },
    "race-spins": { type: "string" },
    deaths: { type: "string" },
    "deaths-anytime": { type: "boolean" },
    round: { type: "string" },
    controlled: { type: "boolean" },
    "pct-depth": { type: "string" },
    replay: { type: "string" },
    "log-dir": { type: "string" },
    json: { type: "boolean" },
  });
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const t = str(values, name);
    return t === undefined ? fallback : parseIntIn(t, `--${name}`, min, max);
  };
  const controlled = values.controlled === true;
  const strategy = parseChoice(str(values, "strategy") ?? "all", "--strategy", [
    ...STRATEGIES,
    "all",
  ] as const);
  const rcu = parseChoice(str(values, "rcu") ?? "all", "--rcu", ["mb", "qsbr", "all"] as const);
  const o: TortureOptions = {
    seed: chooseSeed(str(values, "seed")),
    vcpus: int("vcpus", 2, 1, 16),
    ops: int("ops", controlled ? 400 : 20_000, 1, 1_000_000),
    strategies: strategy === "all" ? STRATEGIES : [strategy as StrategyName],
    flavors: rcu === "all" ? ["mb", "qsbr"] : [rcu],
    allocFail:
      str(values, "alloc-fail") === undefined
        ? 0
        : parseRatio(str(values, "alloc-fail") as string, "--alloc-fail"),
    raceSpins: int("race-spins", 500, 0, 100_000),
    deathRate:
      str(values, "deaths") === undefined
        ? DEFAULT_DEATH_RATE
        : parseRatio(str(values, "deaths") as string, "--deaths"),
    controlled,
    logDir: str(values, "log-dir") ?? join(tmpdir(), "stage2-torture"),
  };
  if (values.rounds !== undefined) o.rounds = int("rounds", 1, 1, 1_000_000);
  // --rounds alone runs that many rounds; otherwise the time budget (default 10 s) decides.
  if (values.seconds !== undefined || o.rounds === undefined)
    o.seconds = int("seconds", 10, 0, 7 * 24 * 3600);
  if (values.round !== undefined) o.onlyRound = int("round", 0, 0, 1_000_000);
  if (values["pct-depth"] !== undefined) {
    if (!controlled) throw new UsageError("--pct-depth needs --controlled");
    o.pctDepth = int("pct-depth", 3, 1, 64);
  }
  if (values["deaths-anytime"] === true) o.deathAnytime = true;
  if (controlled && (values.deaths !== undefined || o.deathAnytime))
    throw new UsageError("--deaths does not apply to --controlled rounds (a death is taken by timing)");
  const replay = str(values, "replay");
  if (replay !== undefined) {
    o.replay = readReplay(replay);
    o.replayPath = replay;
  }
  return { o, json: values.json === true };
}

function readReplay(path: string): ScheduleFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new UsageError(`--replay ${quote(path)}: ${String((e as Error).message).split("\n")[0]}`);
  }
  const bad = checkScheduleFile(parsed);
  if (bad !== null) throw new UsageError(`--replay ${quote(path)}: ${bad}`);
  return parsed as ScheduleFile;
}

/** The text summary: what ran, what was seen, what was injected, the verdict. */
export function summaryLines(s: TortureSummary): string[] {
  const injected = Object.entries(s.injected).map(([k, v]) => `${k} ${v}`);
  const lines = [
    `torture summary (seed ${s.seed}, ${s.mode}): ${s.rounds} rounds in ${s.seconds} s`,
    `  configurations:  ${Object.entries(s.configs)
      .map(([k, v]) => `${k} x${v}`)
      .join(", ")}`,
    `  operations:      ${s.operations} (vCPU ${s.vcpuOps}, host ${s.hostOps}); faults ${s.faults}`,
    `  races seen:      ${s.races.again} AGAIN retries, ${s.races.casFailures} CAS failures`,
    `  grace periods:   ${s.gracePeriods}`,
    `  injected:        ${injected.length > 0 ? injected.join(", ") : "none"}; ENOMEM reported to the guest ${s.nomemReported}; eager splits cut short ${s.hostNomem}`,
    `  vCPU deaths:     ${s.deaths} killed on purpose, reaped by the death watch; ${s.lostRecovered} pages recovered from their hands`,
    `  gave up:         ${s.gaveUp} guest accesses still AGAIN after the retry budget (reported, not flagged)`,
    `  rcu age:         ${s.rcuAge[0]} / ${s.rcuAge[1]} / ${s.rcuAge[2]} / ${s.rcuAge[3]} pages entered at 0 / 1 / 2 / >2 grace periods`,
    `  checks passed:   ${s.checksPassed} of ${s.checksRun}`,
  ];
  for (const h of s.schedules)
    lines.push(`  schedule:        round ${h.round} hash ${h.hash} (${h.steps} steps)`);
  if (s.violations.length === 0) {
    lines.push(`PASS: no violation (seed ${s.seed})`);
    return lines;
  }
  for (const v of s.violations)
    lines.push(`  violation: round ${v.round} ${v.strategy}/${v.rcu} ${v.checker}: ${v.detail}`);
  const v = s.violations[0] as TortureSummary["violations"][number];
  lines.push(
    `  replay: ${v.replay}`,
    `  op log: ${v.logFile}`,
    `FAIL: ${s.violations.length} violation(s) (seed ${s.seed})`,
  );
  return lines;
}

/** Builds the command; tests pass `testOnly` (a planted bug) that no flag can reach. */
export function makeTortureCommand(testOnly: TortureTestOnly = {}): Command {
  return {
    name: "torture",
    summary: "random op mixes over a VM with every checker on, faults injected; replayable",
    usage: USAGE,
    async run(argv: string[], io: CliIo): Promise<number> {
      const { o, json } = parseOptions(argv);
      if (testOnly.bugs) o.testOnlyBugs = testOnly.bugs;
      if (testOnly.noDeathRecovery) o.testOnlyNoDeathRecovery = true;
      const seed = o.replay ? o.replay.seed : o.seed;
      // The seed first, on stderr, so that a run that dies can still be replayed.
      io.err(`stage2 torture: seed ${seed} (replay with --seed ${seed})`);
      const stat = json ? io.err : io.out;
      const s = await runTorture(o, { stat: (line) => stat(line) });
      if (json) io.out(JSON.stringify(s));
      else io.out(summaryLines(s).join("\n"));
      if (s.violations.length > 0 && json) {
        const v = s.violations[0] as TortureSummary["violations"][number];
        io.err(`stage2 torture: FAIL (seed ${seed}); replay: ${v.replay}; op log: ${v.logFile}`);
      }
      return s.violations.length > 0 ? 1 : 0;
    },
  };
}

export const tortureCommand: Command = makeTortureCommand();
