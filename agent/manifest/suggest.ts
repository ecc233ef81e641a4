// "Did you mean ...?": the closest known word to a misspelt one. Pure.

/** Levenshtein distance between a and b (insert, delete, substitute; each costs 1). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/**
 * The known word closest to `word`, when it is close enough to be a likely typo (at most a third
 * of the word's length, and at most 3 edits; case differences count as close); else undefined.
 */
export function closest(word: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const w = word.toLowerCase(), l = k.toLowerCase();
    const d = l === w ? 0.5 : w.length >= 3 && (l.startsWith(w) || l.endsWith(w)) ? 1 : editDistance(word, k);
    if (d < bestDistance) { best = k; bestDistance = d; }
  }
  const limit = Math.min(3, Math.max(1, Math.floor(word.length / 3)));
  return bestDistance <= limit ? best : undefined;
}

/** "; did you mean 'interval'?" or "" when nothing is close. */
export function didYouMean(word: string, known: readonly string[]): string {
  const k = closest(word, known);
  return k === undefined ? "" : `; did you mean '${k}'?`;
}

/** "a, b or c" */
export function oneOf(words: readonly string[]): string {
  if (words.length <= 1) return words.join("");
  return `${words.slice(0, -1).join(", ")} or ${words[words.length - 1]}`;
}
