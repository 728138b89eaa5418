/**
 * The lost-dirty-page race, reproduced deterministically.
 *
 * A vCPU write-faults on a THP slot and reads the slot (logging off, mapping size 2 MiB); before
 * it takes mmu_lock, the host turns dirty logging on. The vCPU stops at the fault.slot-read race
 * point and goes on only once the host has acted (MMU_SEQ moved, or the host waits for this
 * fault). Without a fix the fault installs a writable 2 MiB block after the host's
 * write-protection, and every later write to it is missing from the log.
 *
 * The fix closes the window twice (memslot changes wait for faults in flight; faults re-check
 * MMU_SEQ under the lock); each half alone must close it, and with both disabled (testOnly) the
 * pages must be lost, which shows the test can fail.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Vm, type VmTestOnly } from "../src/kvm/vm.js";
import { countBits, ScriptedVcpu } from "./kvm-helpers.js";

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

/**
 * Runs the race; returns the pages of the block written after logging was on and missing from the
 * log, and how many faults retried on a moved MMU_SEQ.
 */
async function race(testOnly: VmTestOnly): Promise<{ lost: number; seqRetries: number }> {
  const vm = await Vm.create({
    granule: 4096,
    iaBits: 40,
    poolPages: 512,
    debug: true,
    mode: "shared",
    vcpus: 1,
    memslots: [{ ipa: GIB, size: 4 * MIB, backing: "anonymous_thp" }],
    testOnly,
  });
  const vcpu = new ScriptedVcpu(vm, 0, { pauseAtSlotRead: true });
  try {
    vcpu.post({ op: "touch", ipa: GIB, write: true });
    const paused = await vcpu.next();
    assert.equal(paused.paused, true, `the vCPU did not stop at the race point: ${JSON.stringify(paused)}`);
    // KVM_SET_USER_MEMORY_REGION with KVM_MEM_LOG_DIRTY_PAGES, without manual protect (-g).
    vm.enableDirtyLogging(0);
    assert.ok((await vcpu.result()) >= 0);
    // Logging is on from here: every page written now must show up in the next get.
    assert.ok((await vcpu.run({ op: "touchRange", start: GIB, size: 2 * MIB, write: true })) >= 0);
    const log = vm.getDirtyLog(0);
    return { lost: 512 - countBits(log, 0, 512), seqRetries: vm.vcpuStats.snapshot().seqRetries };
  } finally {
    await vcpu.close();
    await vm.destroy();
  }
}

test("dirty logging enabled while a fault holds a stale memslot loses no dirty page", async () => {
  assert.equal((await race({})).lost, 0);
});

test("waiting for faults in flight alone closes the lost-dirty-page window", async () => {
  const r = await race({ noSeqCheck: true });
  assert.equal(r.lost, 0);
  assert.equal(r.seqRetries, 0, "the check is off: the wait alone must have done it");
});

test("the MMU_SEQ re-check under mmu_lock alone closes the lost-dirty-page window", async () => {
  const r = await race({ noFaultWait: true });
  assert.equal(r.lost, 0);
  assert.equal(r.seqRetries, 1, "the stale fault must have retried once");
});

test("negative control: without either half of the fix the writable block loses every dirty page", async () => {
  assert.equal((await race({ noSeqCheck: true, noFaultWait: true })).lost, 512);
});
