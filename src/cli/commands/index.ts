/** Every subcommand, in the order `stage2 --help` lists them. */
import type { Command } from "../command.js";
import { decodeCommand } from "./decode.js";
import { geometryCommand } from "./geometry.js";
import { scriptCommand } from "./script.js";

export const COMMANDS: readonly Command[] = [geometryCommand, decodeCommand, scriptCommand];
