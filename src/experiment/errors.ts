/**
 * The experiment layer's one error for bad input: a workload's flags, sizes or combinations that
 * cannot run. Front ends print its one-line message and exit with 2 (bad input); nothing has been
 * started or written when it is thrown.
 */
export class ConfigError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

const MAX_SHOWN = 60;

/**
 * User text made safe to echo in a one-line message: control characters (escape codes, NUL,
 * newlines) become `?` and anything past 60 characters is cut with an ellipsis.
 */
export function shown(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping them is the point
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f]/g, "?");
  return clean.length > MAX_SHOWN ? `${clean.slice(0, MAX_SHOWN)}…` : clean;
}
