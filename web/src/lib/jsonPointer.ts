// Where a JSON pointer (RFC 6901) lands in a JSON text: the compiler's diagnostics name a pointer, the import
// dialog marks the text it names. A small scanner over the text (not JSON.parse, which forgets positions): it walks
// down the pointer's tokens, skipping the values it passes over, and answers the character range of the value the
// pointer names. A pointer to a member that does not exist lands on the closest existing parent, so the mark is
// still near the problem. Text that is not JSON up to that point answers null.

export interface Range {
  from: number;
  to: number;
}

/** The tokens of a pointer: "/a~1b/0" is ["a/b", "0"]; "" is the whole document; null when it is not a pointer. */
export function pointerTokens(pointer: string): string[] | null {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) return null;
  return pointer
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

class Scanner {
  i = 0;
  constructor(readonly s: string) {}

  ws() {
    while (this.i < this.s.length && ' \t\n\r'.includes(this.s[this.i])) this.i++;
  }

  /** Reads a string literal at the cursor and answers its value. */
  string(): string {
    if (this.s[this.i] !== '"') throw new Error('expected a string');
    const start = this.i;
    this.i++;
    while (this.i < this.s.length) {
      const c = this.s[this.i];
      if (c === '\\') this.i += 2;
      else if (c === '"') {
        this.i++;
        return JSON.parse(this.s.slice(start, this.i)) as string;
      } else this.i++;
    }
    throw new Error('unterminated string');
  }

  /** Skips one value at the cursor (after whitespace) and answers its range. */
  value(): Range {
    this.ws();
    const from = this.i;
    const c = this.s[this.i];
    if (c === '"') this.string();
    else if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      this.i++;
      this.ws();
      if (this.s[this.i] === close) this.i++;
      else
        for (;;) {
          if (c === '{') {
            this.ws();
            this.string();
            this.ws();
            this.expect(':');
          }
          this.value();
          this.ws();
          if (this.s[this.i] === ',') this.i++;
          else {
            this.expect(close);
            break;
          }
        }
    } else {
      const m = /^(?:true|false|null|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(this.s.slice(this.i, this.i + 400));
      if (!m) throw new Error('expected a value');
      this.i += m[0].length;
    }
    return { from, to: this.i };
  }

  expect(ch: string) {
    this.ws();
    if (this.s[this.i] !== ch) throw new Error(`expected ${ch}`);
    this.i++;
  }
}

/**
 * The range of the value `pointer` names in `text`; for a member that is absent, the range of the closest parent
 * that exists. A member named by the pointer gets its key included (`"key": value`), which reads better marked.
 * Null when the text is not JSON on the way there or the pointer is malformed.
 */
export function pointerRange(text: string, pointer: string): Range | null {
  const tokens = pointerTokens(pointer);
  if (!tokens) return null;
  const sc = new Scanner(text);
  try {
    sc.ws();
    let keyFrom: number | null = null;
    for (const token of tokens) {
      sc.ws();
      const open = sc.s[sc.i];
      const containerStart = sc.i;
      if (open !== '{' && open !== '[') {
        // The pointer goes through a scalar: mark the scalar, the deepest thing that exists.
        const r = sc.value();
        return { from: keyFrom ?? r.from, to: r.to };
      }
      const close = open === '{' ? '}' : ']';
      sc.i++;
      let found = false;
      let index = 0;
      sc.ws();
      if (sc.s[sc.i] !== close)
        for (;;) {
          sc.ws();
          let thisKeyFrom: number | null = null;
          let matches: boolean;
          if (open === '{') {
            thisKeyFrom = sc.i;
            const key = sc.string();
            sc.expect(':');
            matches = key === token;
          } else {
            matches = /^(0|[1-9]\d*)$/.test(token) && Number(token) === index;
          }
          sc.ws();
          if (matches) {
            keyFrom = thisKeyFrom;
            found = true;
            break;
          }
          sc.value();
          index++;
          sc.ws();
          if (sc.s[sc.i] === ',') sc.i++;
          else {
            sc.expect(close);
            break;
          }
        }
      if (!found) {
        // Absent member: mark the container that should hold it.
        sc.i = containerStart;
        const r = sc.value();
        return { from: keyFrom ?? r.from, to: r.to };
      }
    }
    const r = sc.value();
    return { from: keyFrom ?? r.from, to: r.to };
  } catch {
    return null;
  }
}

/** The offset of a 1-based line and column (the server's position of a syntax error), clamped to the text. */
export function lineColumnOffset(text: string, line: number, column: number): number {
  let offset = 0;
  for (let l = 1; l < line; l++) {
    const nl = text.indexOf('\n', offset);
    if (nl < 0) return text.length;
    offset = nl + 1;
  }
  return Math.min(text.length, offset + Math.max(0, column - 1));
}

/** The pointer of a list of tokens: ["a/b", "0"] is "/a~1b/0" (the inverse of `pointerTokens`). */
export function pointerOf(tokens: (string | number)[]): string {
  return tokens.map((t) => `/${String(t).replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');
}

/** The node a pointer is in: "/workflow_graph/nodes/<id>/..." answers the id (unescaped), anything else null. */
export function nodeOfPointer(pointer: string): string | null {
  const t = pointerTokens(pointer);
  return t && t.length >= 3 && t[0] === 'workflow_graph' && t[1] === 'nodes' ? t[2] : null;
}

/** What a compiler diagnostic says about where it is (the shape of ckp's diagnostics). */
export interface Located {
  pointer?: string | null;
  line?: number | null;
  column?: number | null;
}

/**
 * Where a diagnostic is in `text`: its pointer resolved against this text (which may have changed since the server
 * read it), else its line and column (one character), else null.
 */
export function diagnosticRange(text: string, d: Located): Range | null {
  if (d.pointer != null) {
    const r = pointerRange(text, d.pointer);
    if (r) return r;
  }
  if (d.line) {
    const at = lineColumnOffset(text, d.line, d.column ?? 1);
    return { from: at, to: Math.min(text.length, at + 1) };
  }
  return null;
}
