/**
 * A host thread for the kvm tests (an MMU-notifier thread): attaches a host view of the VM with
 * attachHost and runs unmaps on command, replying when done.
 */
import { parentPort, workerData } from "node:worker_threads";
import { attachHost, type VmHandle } from "../src/kvm/vm.js";

export type KvmHostCommand =
  | { op: "unmap"; ipa: number; size: number; times: number }
  | { op: "createMemslot"; ipa: number; size: number };

const host = attachHost((workerData as { vm: VmHandle }).vm);
const port = parentPort;
if (port === null) throw new Error("kvm-host-worker must run in a worker thread");

port.on("message", (cmd: KvmHostCommand) => {
  try {
    if (cmd.op === "unmap") {
      for (let i = 0; i < cmd.times; i++) host.unmap(cmd.ipa, cmd.size);
      port.postMessage({ result: cmd.times });
    } else {
      port.postMessage({
        result: host.createMemslot({ ipa: cmd.ipa, size: cmd.size, backing: "anonymous" }),
      });
    }
  } catch (e) {
    port.postMessage({ error: (e as Error).stack ?? String(e) });
  }
});
