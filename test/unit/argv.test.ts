// splitCommand as a table: a command line -> argv, or the sentence that refuses it.
import { describe, expect, test } from "bun:test";
import { splitArgs, splitCommand } from "../../agent/core/argv.ts";

const split: [string, string[]][] = [
  ["bun app/server.ts", ["bun", "app/server.ts"]],
  ["  bun   app.ts  ", ["bun", "app.ts"]],
  [`sh -c 'a | b && c > /dev/null; echo $HOME'`, ["sh", "-c", "a | b && c > /dev/null; echo $HOME"]],
  [`echo "a \\"b\\" \\$HOME" 'it''s'`, ["echo", `a "b" $HOME`, "its"]],
  [`echo a\\ b a\\|b "x|y" ''`, ["echo", "a b", "a|b", "x|y", ""]],
  [`bun -e "setInterval(() => console.log('working'), 1000)"`, ["bun", "-e", "setInterval(() => console.log('working'), 1000)"]],
  ["price $ 5 100%", ["price", "$", "5", "100%"]],
  ["one line\n", ["one", "line"]],
];
const refused: [string, string][] = [
  ["", "is empty"],
  ["   ", "is empty"],
  ["'' x", "starts with an empty program name"],
  ["bun 'install", "unterminated ' quote (opened at character 5)"],
  [`check "x`, `unterminated " quote (opened at character 7)`],
  ["a | b", "`a | b` uses a shell pipe (|), but commands run without a shell: write sh -c 'a | b' to use one"],
  ["a || b", "a shell list (||)"],
  ["make && make install", "a shell list (&&)"],
  ["a; b", "a shell list (;)"],
  ["sleep 1 &", "a background job (&)"],
  ["bun x > out.log", "shell redirection"],
  ["bun x 2>&1", "shell redirection"],
  ["bun x < in", "shell redirection"],
  ["echo $(date)", "command substitution"],
  ["echo `date`", "command substitution"],
  ["bun app.ts --port $PORT", "the shell variable $PORT, which is not expanded"],
  ["echo ${HOME}", "the shell variable ${HOME}"],
  ["echo \"it's\" | wc", "write sh -c 'echo \"it'\\''s\" | wc'"],
  ["bun a\nbun b", "spans more than one line"],
];

describe("splitCommand", () => {
  for (const [line, argv] of split) {
    test(`${JSON.stringify(line)} -> ${JSON.stringify(argv)}`, () => {
      expect(splitCommand(line)).toEqual({ ok: true, argv });
      expect(splitArgs(line)).toEqual(argv);
    });
  }
  for (const [line, message] of refused) {
    test(`${JSON.stringify(line)} is refused: ${message}`, () => {
      const r = splitCommand(line);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.message).toContain(message);
      expect(() => splitArgs(line)).toThrow(message);
    });
  }
});
