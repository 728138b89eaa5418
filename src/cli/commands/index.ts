/** Every subcommand, in the order `stage2 --help` lists them. */
import type { Command } from "../command.js";

export const COMMANDS: readonly Command[] = [];
