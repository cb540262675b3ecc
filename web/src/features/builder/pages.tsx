// The author pages: `/procedures/:id/:version/edit` (the server's draft of that version if there is one, else the
// version's document) and `/procedures/new` (a template picker, then the same workspace without autosave until the
// first version is saved).
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useNavigate, useParams, useSearchParams } from 'react-router';
import { PageHead, QueryState } from '../../components/Bits';
import { useConfirm } from '../../components/Dialog';
import { useToast } from '../../components/Toasts';
import { dateTime } from '../../lib/format';
import { actionCatalog, agents, deleteDraft, getVersion, listVersions } from './api';
import { autoLayout } from './BuilderCanvas';
import type { BuilderState } from './history';
import { isObject } from './model';
import { TEMPLATES } from './templates';
import { loadDraft, Workspace } from './Workspace';
import './builder.css';

const enc = encodeURIComponent;

function useCatalog() {
  const actions = useQuery({ queryKey: ['/api/actions', 'flat'], queryFn: actionCatalog, staleTime: 60_000 });
  const agentList = useQuery({ queryKey: ['/api/agents', 'brief'], queryFn: agents, staleTime: 60_000 });
  const fromAgents = (agentList.data ?? []).flatMap((a) => a.capabilities.map((c) => ({ channel: a.channel, name: c.name }))).filter((a) => a.name !== '*');
  const channels = [...new Set([...(agentList.data ?? []).map((a) => a.channel.toUpperCase()), 'API', 'WEB', 'DESKTOP', 'EMAIL', 'DATABASE', 'LLM'])];
  return { actions: [...(actions.data ?? []), ...fromAgents], channels };
}

export function EditProcedure() {
  const { procedureId = '', version = '' } = useParams();
  const navigate = useNavigate();
  const qc = useQueryClient();
  const toast = useToast();
  const confirm = useConfirm();
  const catalog = useCatalog();
  const [nonce, setNonce] = useState(0);
  const loaded = useQuery({
    queryKey: ['builder-load', procedureId, version, nonce],
    queryFn: async () => {
      const [detail, draft] = await Promise.all([getVersion(procedureId, version), loadDraft(procedureId, version)]);
      return { detail, draft };
    },
    staleTime: Infinity,
    gcTime: 0,
    refetchOnWindowFocus: false,
  });
  const d = loaded.data;
  let initial: BuilderState | null = null;
  if (d) {
    const draft = d.draft?.draft;
    if (draft && isObject(draft.ckp)) {
      initial = { ckp: draft.ckp, layout: draft.layout && Object.keys(draft.layout).length ? { ...autoLayout(draft.ckp), ...draft.layout } : autoLayout(draft.ckp) };
    } else initial = { ckp: d.detail.ckp_json, layout: autoLayout(d.detail.ckp_json) };
  }
  const restored = !!d?.draft?.draft;
  return (
    <QueryState loading={loaded.isLoading} error={loaded.error}>
      {d && initial && (
        <>
          <PageHead
            title={<>Edit {d.detail.name}</>}
            sub={
              <>
                <Link to={`/procedures/${enc(procedureId)}/${enc(version)}`}>
                  <span className="mono">{procedureId}</span> version <span className="mono">{version}</span>
                </Link>{' '}
                · saving makes a new version
              </>
            }
          />
          <Workspace
            key={`${procedureId}/${version}/${nonce}`}
            baseVersion={version}
            initial={initial}
            revision={d.draft?.revision ?? 0}
            projectId={d.detail.project_id}
            actions={catalog.actions}
            channels={catalog.channels}
            notice={
              restored ? (
                <div className="banner info bnotice" role="status">
                  <span>
                    Your draft of this version is restored
                    {d.draft?.updated_at ? ` (saved ${dateTime(d.draft.updated_at)}${d.draft.updated_by ? ` by ${d.draft.updated_by}` : ''})` : ''}.
                  </span>
                  <button
                    className="small"
                    onClick={async () => {
                      const ok = await confirm({
                        title: 'Discard the draft?',
                        message: `The draft is deleted and the builder starts again from version ${version}.`,
                        confirm: 'Discard draft',
                        danger: true,
                      });
                      if (!ok) return;
                      try {
                        await deleteDraft(procedureId, version);
                        setNonce((n) => n + 1);
                      } catch (e) {
                        toast.error(e);
                      }
                    }}
                  >
                    Discard draft
                  </button>
                </div>
              ) : null
            }
            onSaved={(pid, v) => {
              // The draft became a version: the next edit of the base starts from the base again.
              void deleteDraft(procedureId, version).catch(() => {});
              toast.show(`Saved ${pid} version ${v}`, 'success');
              void qc.invalidateQueries({ queryKey: ['procedures'] });
              void qc.invalidateQueries({ queryKey: ['procedure', pid] });
              navigate(`/procedures/${enc(pid)}/${enc(v)}`);
            }}
          />
        </>
      )}
    </QueryState>
  );
}

export function NewProcedure() {
  const [params, setParams] = useSearchParams();
  const navigate = useNavigate();
  const qc = useQueryClient();
  const toast = useToast();
  const catalog = useCatalog();
  const templateId = params.get('template');
  const procedureId = params.get('id') ?? '';
  const template = TEMPLATES.find((t) => t.id === templateId);
  const [id, setId] = useState(procedureId || 'my-procedure');
  const [pick, setPick] = useState(TEMPLATES[0].id);
  const taken = useQuery({ queryKey: ['procedure', id.trim(), 'version-list'], queryFn: () => listVersions(id.trim()), enabled: id.trim() !== '' && !template });
  const doc = useQuery({
    queryKey: ['builder-template', templateId, procedureId],
    queryFn: async () => {
      const ckp = await template!.load();
      ckp.procedure_id = procedureId;
      return { ckp, layout: autoLayout(ckp) } satisfies BuilderState;
    },
    enabled: !!template && !!procedureId,
    staleTime: Infinity,
    gcTime: 0,
  });

  if (template && procedureId) {
    return (
      <QueryState loading={doc.isLoading} error={doc.error}>
        {doc.data && (
          <>
            <PageHead title={<>New procedure <span className="mono">{procedureId}</span></>} sub={<>From the template “{template.name}” · nothing is stored until you save a version</>} />
            <Workspace
              baseVersion={null}
              initial={doc.data}
              revision={0}
              actions={catalog.actions}
              channels={catalog.channels}
              onSaved={(pid, v) => {
                toast.show(`Saved ${pid} version ${v}`, 'success');
                void qc.invalidateQueries({ queryKey: ['procedures'] });
                navigate(`/procedures/${enc(pid)}/${enc(v)}`);
              }}
            />
          </>
        )}
      </QueryState>
    );
  }

  const exists = (taken.data ?? []).length > 0;
  const validId = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(id.trim());
  return (
    <>
      <PageHead title="New procedure" sub="Start from an empty canvas or from one of the examples" />
      <form
        className="bnew"
        onSubmit={(e) => {
          e.preventDefault();
          if (validId && !exists) setParams({ template: pick, id: id.trim() });
        }}
      >
        <label className="bfield">
          Procedure id
          <input className="mono" value={id} onChange={(e) => setId(e.target.value)} aria-invalid={!validId || exists} required />
          {!validId ? (
            <span className="field-error">Letters, digits, _ . and -, starting with a letter or digit.</span>
          ) : exists ? (
            <span className="field-error">
              {id.trim()} exists already: <Link to={`/procedures/${enc(id.trim())}/${enc(taken.data![taken.data!.length - 1])}`}>open it</Link> and edit a version instead.
            </span>
          ) : (
            <span className="field-help">The procedure's unique id (procedure_id).</span>
          )}
        </label>
        <fieldset className="btemplates">
          <legend>Template</legend>
          {TEMPLATES.map((t) => (
            <label key={t.id} className={`btemplate ${pick === t.id ? 'picked' : ''}`}>
              <input type="radio" name="template" value={t.id} checked={pick === t.id} onChange={() => setPick(t.id)} />
              <strong>{t.name}</strong>
              <span className="muted">{t.description}</span>
            </label>
          ))}
        </fieldset>
        <div>
          <button className="primary" type="submit" disabled={!validId || exists}>
            Open in the builder
          </button>
        </div>
      </form>
    </>
  );
}
