// Colour only on a terminal, and never with NO_COLOR.

export function useColor(stream: { isTTY?: boolean } = process.stdout): boolean {
  return !!stream.isTTY && !process.env.NO_COLOR && process.env.TERM !== "dumb";
}

const wrap = (code: number) => (on: boolean, s: string) => (on ? `\x1b[${code}m${s}\x1b[0m` : s);
export const red = wrap(31), green = wrap(32), yellow = wrap(33), dim = wrap(2), bold = wrap(1);
