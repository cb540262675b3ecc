// The run's artifacts (`GET /api/runs/{id}/artifacts`) with previews by type: images inline, JSON pretty-printed,
// CSV as a table, other text as text. Only same-origin `/api/artifacts/…` addresses are fetched (with the session);
// anything else is a link.
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { raw, type Schemas } from '../../api/client';
import { Empty, Json, QueryState } from '../../components/Bits';
import { dateTime } from '../../lib/format';
import { GridTable } from './GridTable';

type Artifact = Schemas['ArtifactOut'];
const PREVIEW_LIMIT = 512 * 1024;

function sameOrigin(uri: string): boolean {
  return uri.startsWith('/api/artifacts/');
}

function typeOf(a: Artifact): 'image' | 'json' | 'csv' | 'text' | 'other' {
  const m = (a.mime_type ?? '').toLowerCase();
  const name = (a.name ?? a.uri).toLowerCase();
  if (m.startsWith('image/') || /\.(png|jpe?g|gif|webp|svg)$/.test(name)) return 'image';
  if (m.includes('json') || name.endsWith('.json')) return 'json';
  if (m.includes('csv') || name.endsWith('.csv')) return 'csv';
  if (m.startsWith('text/') || /\.(txt|md|log|html?|xml|ya?ml)$/.test(name)) return 'text';
  return 'other';
}

function size(n: number | null | undefined): string {
  if (n == null) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export function ArtifactsTab({ runId }: { runId: string }) {
  const list = useQuery({
    queryKey: ['run', runId, 'artifacts'],
    queryFn: () => raw<Artifact[]>(`/api/runs/${encodeURIComponent(runId)}/artifacts`),
  });
  const [open, setOpen] = useState<string | null>(null);
  return (
    <QueryState loading={list.isLoading} error={list.error}>
      {list.data && list.data.length === 0 && <Empty>This run recorded no artifacts.</Empty>}
      {!!list.data?.length && (
        <table className="data">
          <caption className="sr-only">Artifacts of this run</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Kind</th>
              <th scope="col">Node / step</th>
              <th scope="col">Size</th>
              <th scope="col">Recorded</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {list.data.map((a) => {
              const name = a.name ?? a.uri.split('/').pop() ?? a.artifact_id;
              const t = typeOf(a);
              const previewable = t !== 'other' && (t === 'image' || sameOrigin(a.uri));
              return [
                <tr key={a.artifact_id}>
                  <td className="mono">{name}</td>
                  <td>
                    {a.kind}
                    {a.mime_type ? <span className="muted"> ({a.mime_type})</span> : null}
                  </td>
                  <td className="mono">
                    {a.node_id ?? '—'}
                    {a.step_id ? ` / ${a.step_id}` : ''}
                  </td>
                  <td>{size(a.size_bytes)}</td>
                  <td>{dateTime(a.created_at)}</td>
                  <td className="row-actions">
                    {previewable && (
                      <button className="small" aria-expanded={open === a.artifact_id} onClick={() => setOpen(open === a.artifact_id ? null : a.artifact_id)}>
                        {open === a.artifact_id ? `Hide preview of ${name}` : `Preview ${name}`}
                      </button>
                    )}
                    <a className="button small" href={a.uri} download={name} aria-label={`Download ${name}`}>
                      Download
                    </a>
                  </td>
                </tr>,
                open === a.artifact_id && (
                  <tr key={`${a.artifact_id}-preview`}>
                    <td colSpan={6}>
                      <Preview artifact={a} name={name} type={t} />
                    </td>
                  </tr>
                ),
              ];
            })}
          </tbody>
        </table>
      )}
    </QueryState>
  );
}

function Preview({ artifact, name, type }: { artifact: Artifact; name: string; type: ReturnType<typeof typeOf> }) {
  const tooBig = (artifact.size_bytes ?? 0) > PREVIEW_LIMIT;
  const text = useQuery({
    queryKey: ['artifact', artifact.uri],
    enabled: type !== 'image' && !tooBig && sameOrigin(artifact.uri),
    queryFn: async () => {
      const r = await fetch(artifact.uri, { credentials: 'same-origin', headers: { 'X-Requested-With': 'ckp-console' } });
      if (!r.ok) throw new Error(`The artifact could not be read (${r.status})`);
      return r.text();
    },
    staleTime: Infinity,
  });
  if (type === 'image') return <img className="artifact-image" src={artifact.uri} alt={`Artifact ${name}`} />;
  if (tooBig) return <p className="muted">Too large to preview ({size(artifact.size_bytes)}): download it.</p>;
  return (
    <QueryState loading={text.isLoading} error={text.error}>
      {text.data !== undefined && <TextPreview text={text.data} type={type} name={name} />}
    </QueryState>
  );
}

function TextPreview({ text, type, name }: { text: string; type: string; name: string }) {
  if (type === 'json') {
    try {
      return <Json value={JSON.parse(text)} label={`Contents of ${name}`} />;
    } catch {
      /* not JSON after all: shown as text */
    }
  }
  if (type === 'csv') {
    const rows = parseCsv(text).slice(0, 201);
    if (rows.length) {
      const [head, ...body] = rows;
      return (
        <div className="csv-preview">
          <GridTable head={head} rows={body} caption={`Contents of ${name}`} />
        </div>
      );
    }
  }
  return (
    <pre className="json" aria-label={`Contents of ${name}`}>
      {text}
    </pre>
  );
}

/** RFC 4180 CSV: quoted fields, doubled quotes, CRLF or LF. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  if (field || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}
