// A command line -> argv, split the way a shell splits words and nothing more: quotes and
// backslashes work, no shell runs. Shell features (pipes, lists, redirection, $-expansion) would
// reach the program as literal arguments, so they are refused with a sentence saying what to write.
// Pure: manifest/ uses it to refuse a bad command at validation, host/ and loop/ to run one.

export type SplitResult = { ok: true; argv: string[] } | { ok: false; message: string };

/** What a shell would make of an unquoted operator, for the message. */
const OPERATORS: [RegExp, string][] = [
  [/^\|\|/, "a shell list (||)"],
  [/^\|/, "a shell pipe (|)"],
  [/^&&/, "a shell list (&&)"],
  [/^[<>]/, "shell redirection"],
  [/^&/, "a background job (&)"],
  [/^;/, "a shell list (;)"],
];

/** `line` in single quotes for `sh -c '...'`: a ' inside becomes '\''. */
const shQuote = (line: string) => `'${line.replace(/'/g, `'\\''`)}'`;

function shellFeature(line: string, what: string, token: string): SplitResult {
  return {
    ok: false,
    message: `\`${line.trim()}\` uses ${what}, but commands run without a shell: ` +
      `write sh -c ${shQuote(line.trim())} to use one, or quote the ${token} if it is meant as an argument`,
  };
}

/**
 * Split `line` into argv. Single quotes keep everything; double quotes keep everything but `\"`,
 * `\\`, `\$` and `` \` ``; a backslash outside quotes keeps the next character. Refused (ok: false,
 * with a message naming the fix): an unterminated quote, an empty command, and any unquoted shell
 * operator (| || && ; & < >), command substitution ($(...), `...`), variable ($NAME, ${...}) or
 * line break. Total: never throws.
 */
export function splitCommand(line: string): SplitResult {
  const out: string[] = [];
  let cur = "", inWord = false, quote: '"' | "'" | null = null, quoteAt = 0;
  const body = line.trim();
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = null;
      else if (c === "\\" && quote === '"' && i + 1 < line.length && '"\\$`'.includes(line[i + 1]!)) cur += line[++i];
      else cur += c;
      continue;
    }
    if (c === '"' || c === "'") { quote = c; quoteAt = i; inWord = true; continue; }
    if (c === "\\" && i + 1 < line.length) { cur += line[++i]; inWord = true; continue; }
    const rest = line.slice(i);
    const op = OPERATORS.find(([re]) => re.test(rest));
    if (op) return shellFeature(line, op[1], rest.match(op[0])![0]);
    if (c === "`" || rest.startsWith("$(")) return shellFeature(line, "command substitution", c === "`" ? "`" : "$");
    const v = /^\$(\{[^}]*\}?|[A-Za-z_][A-Za-z0-9_]*)/.exec(rest);
    if (v) {
      return { ok: false, message: `\`${body}\` uses the shell variable ${v[0]}, which is not expanded (commands run without a shell): ` +
        `the program gets it in its environment, or write sh -c ${shQuote(body)}` };
    }
    if ((c === "\n" || c === "\r") && line.slice(i).trim() !== "" && line.slice(0, i).trim() !== "") {
      return { ok: false, message: "spans more than one line, and commands run without a shell: write one command on one line, " +
        "or put the lines in a script in the repository and run that" };
    }
    if (/\s/.test(c)) { if (inWord) { out.push(cur); cur = ""; inWord = false; } continue; }
    cur += c; inWord = true;
  }
  if (quote) {
    return { ok: false, message: `has an unterminated ${quote} quote (opened at character ${quoteAt + 1}): ` +
      `close it, or write a literal ${quote} as \\${quote}` };
  }
  if (inWord) out.push(cur);
  if (out.length === 0) return { ok: false, message: "is empty: write the program to run and its arguments, e.g. bun app/server.ts" };
  if (out[0] === "") return { ok: false, message: "starts with an empty program name ('' or \"\"): write the program to run first" };
  return { ok: true, argv: out };
}

/** splitCommand for callers that hold a command the schema already accepted; throws Error when it was not. */
export function splitArgs(line: string): string[] {
  const r = splitCommand(line);
  if (!r.ok) throw new Error(`command ${JSON.stringify(line)} ${r.message}`);
  return r.argv;
}
