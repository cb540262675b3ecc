// Where the cursor is in a JSON text that is being typed (so usually not valid JSON): a tolerant scan from the start
// of the text to the cursor that keeps the stack of open objects and arrays. It answers the path of the container
// the cursor is in, whether a property name or a value is expected there, and what has been typed of it.

export type Token = string | number;

export interface Frame {
  kind: 'object' | 'array';
  /** Keys already written in this object (before the cursor). */
  keys: string[];
  /** String values already written in this object, by key (a node's `type` when it comes before the cursor). */
  scalars: Record<string, string>;
}

export interface CursorContext {
  /** The path of the container (object or array) the cursor is in. */
  path: Token[];
  /** A property name, a property's value, or an array item is expected. */
  where: 'key' | 'value' | 'item';
  /** For a value: the property's name. */
  key?: string;
  /** Where what is being typed starts (after the opening quote when quoted). */
  from: number;
  /** The cursor is inside a string. */
  quoted: boolean;
  /** What has been typed of it. */
  prefix: string;
  /** The open containers, outermost first (frames[i] is the container at path.slice(0, i)). */
  frames: Frame[];
}

interface OpenFrame extends Frame {
  /** object: key, colon, value, comma; array: value, comma. */
  state: 'key' | 'colon' | 'value' | 'comma';
  key: string | null;
  index: number;
}

const WS = new Set([' ', '\t', '\n', '\r']);

/** The context at `pos` in `text`, or null where nothing can be typed (between a key and its colon, after a value). */
export function cursorContext(text: string, pos: number): CursorContext | null {
  const stack: OpenFrame[] = [];
  const top = () => stack[stack.length - 1];
  const done = () => {
    const f = top();
    if (f) f.state = 'comma';
  };
  const result = (where: CursorContext['where'], from: number, quoted: boolean): CursorContext => {
    const f = top();
    const path: Token[] = [];
    for (let k = 0; k < stack.length - 1; k++) {
      const s = stack[k];
      path.push(s.kind === 'object' ? (s.key ?? '') : s.index);
    }
    return {
      path,
      where,
      key: where === 'value' ? (f.key ?? undefined) : undefined,
      from,
      quoted,
      prefix: text.slice(from, pos),
      frames: stack.map(({ kind, keys, scalars }) => ({ kind, keys, scalars })),
    };
  };
  const expecting = (): CursorContext['where'] | null => {
    const f = top();
    if (!f) return null;
    if (f.kind === 'object') return f.state === 'key' ? 'key' : f.state === 'value' ? 'value' : null;
    return f.state === 'value' ? 'item' : null;
  };

  let i = 0;
  while (i < pos) {
    const c = text[i];
    if (WS.has(c)) {
      i++;
      continue;
    }
    const f = top();
    if (c === '{' || c === '[') {
      stack.push({ kind: c === '{' ? 'object' : 'array', keys: [], scalars: {}, state: c === '{' ? 'key' : 'value', key: null, index: 0 });
      i++;
    } else if (c === '}' || c === ']') {
      stack.pop();
      done();
      i++;
    } else if (c === ',') {
      if (f) {
        if (f.kind === 'object') {
          f.state = 'key';
          f.key = null;
        } else {
          f.index++;
          f.state = 'value';
        }
      }
      i++;
    } else if (c === ':') {
      if (f && f.kind === 'object') f.state = 'value';
      i++;
    } else if (c === '"') {
      const start = i + 1;
      let j = start;
      while (j < pos && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (j >= pos) {
        // The cursor is inside this string.
        const where = expecting();
        return where ? result(where, start, true) : null;
      }
      let value: string;
      try {
        value = JSON.parse(text.slice(i, j + 1)) as string;
      } catch {
        value = text.slice(start, j);
      }
      if (f && f.kind === 'object' && f.state === 'key') {
        f.key = value;
        f.keys.push(value);
        f.state = 'colon';
      } else {
        if (f && f.kind === 'object' && f.state === 'value' && f.key !== null) f.scalars[f.key] = value;
        done();
      }
      i = j + 1;
    } else {
      // A literal (number, true, false, null) or a bare word being typed.
      let j = i;
      while (j < text.length && !WS.has(text[j]) && !',:{}[]"'.includes(text[j])) j++;
      if (j >= pos) {
        const where = expecting();
        return where ? result(where, i, false) : null;
      }
      done();
      i = j;
    }
  }
  const where = expecting();
  return where ? result(where, pos, false) : null;
}
