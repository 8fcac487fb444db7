/**
 * Finds where JSON text stops being valid. V8 (Node 20) often says only "Unexpected token"
 * without a position; a bad config.json deserves a line and column, so on the error path the
 * text is scanned again by this small recursive-descent checker (RFC 8259 grammar).
 * Returns the offset of the first offending character (the text length for a truncated text),
 * or -1 when the text is valid.
 */
export function jsonErrorOffset(text: string): number {
  let i = 0;
  const n = text.length;

  class Stop extends Error {
    constructor(readonly at: number) {
      super('stop');
    }
  }
  const stop = (at: number): never => {
    throw new Stop(at);
  };
  const ws = () => {
    while (i < n && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  const expect = (ch: string) => {
    if (text[i] !== ch) stop(i);
    i++;
  };
  const literal = (word: string) => {
    for (const ch of word) expect(ch);
  };
  const digits = () => {
    const start = i;
    while (i < n && text[i]! >= '0' && text[i]! <= '9') i++;
    if (i === start) stop(i);
  };
  const number = () => {
    if (text[i] === '-') i++;
    if (text[i] === '0') i++;
    else digits();
    if (text[i] === '.') {
      i++;
      digits();
    }
    if (text[i] === 'e' || text[i] === 'E') {
      i++;
      if (text[i] === '+' || text[i] === '-') i++;
      digits();
    }
  };
  const string = () => {
    expect('"');
    for (;;) {
      if (i >= n) stop(i);
      const ch = text.charCodeAt(i);
      if (ch === 0x22) {
        i++;
        return;
      }
      if (ch < 0x20) stop(i);
      if (ch === 0x5c) {
        i++;
        const esc = text[i];
        if (esc === 'u') {
          for (let k = 1; k <= 4; k++) if (!/[0-9a-fA-F]/.test(text[i + k] ?? '')) stop(i + k);
          i += 5;
        } else if (esc !== undefined && '"\\/bfnrt'.includes(esc)) i++;
        else stop(i);
      } else i++;
    }
  };
  const value = (depth: number): void => {
    if (depth > 10_000) stop(i);
    ws();
    const ch = text[i];
    if (ch === '{') {
      i++;
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        ws();
        string();
        ws();
        expect(':');
        value(depth + 1);
        ws();
        if (text[i] === ',') i++;
        else {
          expect('}');
          return;
        }
      }
    } else if (ch === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        value(depth + 1);
        ws();
        if (text[i] === ',') i++;
        else {
          expect(']');
          return;
        }
      }
    } else if (ch === '"') string();
    else if (ch === 't') literal('true');
    else if (ch === 'f') literal('false');
    else if (ch === 'n') literal('null');
    else if (ch === '-' || (ch !== undefined && ch >= '0' && ch <= '9')) number();
    else stop(i);
  };

  try {
    value(0);
    ws();
    return i < n ? i : -1;
  } catch (err) {
    if (err instanceof Stop) return err.at;
    throw err;
  }
}
