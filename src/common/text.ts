/**
 * User text inside messages: every message that echoes what a user typed passes it through
 * `quote()` (or `sanitize()`), so control characters, escape codes and bidi marks show as escapes
 * and a very long word is cut with an ellipsis. Shared by the CLI and the experiment layer.
 */

/** Longest piece of user text echoed in a message, in characters (then "…"). */
export const ECHO_MAX = 64;

/**
 * User text made safe for a one-line message: C0/C1 control characters, DEL, and the bidi
 * override/isolate marks are shown as `\xNN` / `\uNNNN` escapes (ESC, NUL and newlines included),
 * and the result is cut to `max` characters with an ellipsis.
 */
export function sanitize(text: string, max = ECHO_MAX): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: these are exactly what we escape
  const escaped = text.replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16)}`;
  });
  const chars = Array.from(escaped); // by code point, so a surrogate pair is never cut in half
  return chars.length <= max ? escaped : `${chars.slice(0, max - 1).join("")}…`;
}

/** `"text"`, sanitized: the form every message uses to echo what the user typed. */
export function quote(text: string, max = ECHO_MAX): string {
  return `"${sanitize(text, max)}"`;
}

/**
 * The choice `text` names, matched without regard to case (`4k` is `4K`, `MB` is `mb`), or
 * undefined: the rule of every option that takes one of a list, in the CLI and the experiment
 * layer alike (each throws its own error naming the flag).
 */
export function findChoice<T extends string>(text: string, choices: readonly T[]): T | undefined {
  const t = text.toLowerCase();
  return choices.find((c) => c.toLowerCase() === t);
}
