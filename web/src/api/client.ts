// The typed API client: generated types (schema.d.ts, from ckp's /api/openapi.json by `npm run gen:api`) over
// openapi-fetch. Same origin, the session cookie, and `X-Requested-With` (ckp refuses a cookie-authenticated change
// without it).
import createClient, { type Middleware } from 'openapi-fetch';
import type { components, paths } from './schema';

export type Schemas = components['schemas'];

/** An answer of the API that is not a success, with ckp's error body (`{detail, code, error_id?}`). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly detail: unknown;
  constructor(status: number, body: unknown) {
    const b = (body ?? {}) as { detail?: unknown; code?: string; error_id?: string };
    super(describe(status, b.detail, b.error_id));
    this.status = status;
    this.code = b.code ?? `http_${status}`;
    this.detail = b.detail;
  }
}

function describe(status: number, detail: unknown, errorId?: string): string {
  if (typeof detail === 'string') return errorId ? `${detail} (error id ${errorId})` : detail;
  if (detail && typeof detail === 'object') {
    const d = detail as { message?: string; errors?: unknown };
    if (typeof d.message === 'string') return d.message;
  }
  return `The server answered ${status}`;
}

type Listener = () => void;
const unauthorized = new Set<Listener>();
/** Called when any request answers 401: the app shows the sign-in page. */
export function onUnauthorized(l: Listener): () => void {
  unauthorized.add(l);
  return () => unauthorized.delete(l);
}

const watch401: Middleware = {
  onResponse({ response, request }) {
    if (response.status === 401 && !new URL(request.url).pathname.startsWith('/api/auth/login')) {
      for (const l of unauthorized) l();
    }
    return response;
  },
};

export const api = createClient<paths>({
  baseUrl: '',
  credentials: 'same-origin',
  headers: { 'X-Requested-With': 'ckp-console' },
});
api.use(watch401);

/** Unwraps an openapi-fetch result: the data, or an ApiError thrown. */
export async function data<T>(p: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const { data, error, response } = await p;
  if (!response.ok) throw new ApiError(response.status, error);
  return data as T;
}

/** A request to a path the generated types do not describe precisely (free-form JSON answers). */
export async function raw<T = unknown>(path: string, init: RequestInit = {}): Promise<T> {
  const headers = new Headers(init.headers);
  headers.set('X-Requested-With', 'ckp-console');
  if (init.body && !headers.has('Content-Type')) headers.set('Content-Type', 'application/json');
  const response = await fetch(path, { ...init, headers, credentials: 'same-origin' });
  if (response.status === 401) for (const l of unauthorized) l();
  const text = await response.text();
  let body: unknown = undefined;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = { detail: text };
  }
  if (!response.ok) throw new ApiError(response.status, body);
  return body as T;
}
