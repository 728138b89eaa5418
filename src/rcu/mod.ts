/**
 * Userspace RCU for worker threads over SharedArrayBuffer: mb and qsbr flavors, grace periods
 * shared among callers, data-described callbacks run by a callback worker, barrier, polling,
 * flood control, shared statistics and stall reports. Start with `Rcu.create` (rcu.ts).
 */
export {
  RCU_AGAIN,
  type RcuCallback,
  type RcuCallbackContext,
  RcuCallbackRegistry,
  type RegisterRcuCallbacks,
} from "./callbacks.js";
export { CallbackEngine } from "./engine.js";
export { RcuCallbackWorkerLostError, RcuUsageError } from "./errors.js";
export { cookieExpired } from "./grace-period.js";
export { StallWhat } from "./layout.js";
export { MbThread } from "./mb.js";
export type { RcuFlavor, RcuOptions, RcuPluginSpec, ResolvedRcuOptions } from "./options.js";
export { QsbrThread } from "./qsbr.js";
export { Rcu, type RcuThread } from "./rcu.js";
export { type RcuHandle, RcuShared } from "./shared.js";
export { type RcuStallHandler, type RcuStallReport, setRcuStallHandler } from "./stall.js";
export type { Log2Histogram, RcuStats } from "./stats.js";
export type { RcuThreadBase } from "./thread.js";
