/** Every subcommand, in the order `stage2 --help` lists them. */
import type { Command } from "../command.js";
import { benchCommand } from "./bench.js";
import { compareCommand } from "./compare.js";
import { decodeCommand } from "./decode.js";
import { faultsCommand } from "./faults.js";
import { reportCommand } from "./report.js";
import { runCommand } from "./run.js";
import { geometryCommand } from "./geometry.js";
import { scriptCommand } from "./script.js";
import { tortureCommand } from "./torture.js";

export const COMMANDS: readonly Command[] = [
  runCommand,
  compareCommand,
  reportCommand,
  geometryCommand,
  decodeCommand,
  scriptCommand,
  faultsCommand,
  benchCommand,
  tortureCommand,
];
