// The author's workspace: one draft {ckp, layout} edited in two views (the visual builder and the CKP text), one
// undo history over both, validation as you edit (errors on the nodes and in the problems panel), autosave of the
// draft to the server (with its revision; a conflict shows both sides), and "Save as new version".
import { useEffect, useMemo, useRef, useState } from 'react';
import { useBlocker } from 'react-router';
import { ApiError } from '../../api/client';
import { useConfirm } from '../../components/Dialog';
import { useToast } from '../../components/Toasts';
import { autoLayout, BuilderCanvas, DRAG_TYPE, NODE_H, NODE_W, type CanvasApi, type NodeOverlay } from './BuilderCanvas';
import { getDraft, putDraft, validate, type Diagnostic, type Draft, type DraftConflict, type DraftOut, type Layout, type ValidateOut } from './api';
import { CkpEditor } from '../ckp-editor';
import { TestRunPanel, useRunOverlay } from '../test-run';
import { ConflictDialog, SaveDialog } from './dialogs';
import { useHistory, type BuilderState } from './history';
import { Inspector } from './Inspector';
import {
  addNode,
  connect,
  deleteNode,
  disconnect,
  graphOf,
  isObject,
  jsonEqual,
  knownVariables,
  nodeIds,
  nodesOf,
  PALETTE,
  pasteNodes,
  pointerNode,
  renameNode,
  retarget,
  setStart,
  TYPE_LABELS,
  type JsonObject,
  type NodeType,
} from './model';

export interface WorkspaceProps {
  /** The version the draft is based on (null for a new procedure: nothing is autosaved). */
  baseVersion: string | null;
  initial: BuilderState;
  revision: number;
  projectId?: string | null;
  actions: { channel: string; name: string }[];
  channels: string[];
  overlay?: Record<string, NodeOverlay>;
  /** Shown above the workspace (a restored-draft notice). */
  notice?: React.ReactNode;
  /** A version was saved: its procedure id (the document's, which the author may have changed) and version. */
  onSaved: (procedureId: string, version: string) => void;
}

type Tab = 'builder' | 'ckp' | 'test';
type SaveState = 'saved' | 'pending' | 'saving' | 'error' | 'conflict' | 'local';

let clipboard: { nodes: Record<string, JsonObject>; layout: Layout } | null = null;

function withLayout(ckp: JsonObject, layout: Layout): Layout {
  const ids = nodeIds(ckp);
  if (ids.every((id) => layout[id])) return layout;
  return autoLayout(ckp, layout);
}

function editingText(el: Element | null): boolean {
  if (!el) return false;
  const tag = el.tagName;
  return tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT' || (el as HTMLElement).isContentEditable;
}

export function Workspace(p: WorkspaceProps) {
  const toast = useToast();
  const hist = useHistory(p.initial);
  const { ckp, layout } = hist.state;
  const [tab, setTab] = useState<Tab>('builder');
  const [selected, setSelected] = useState<string[]>([]);
  const [selectedEdge, setSelectedEdge] = useState<string | null>(null);
  const canvas = useRef<CanvasApi>(null);
  const [saving, setSaving] = useState(false);
  const [serverErrors, setServerErrors] = useState<Diagnostic[] | null>(null);
  // ---- test runs: the last one started from the Test view, shown on the canvas ----
  const [testRun, setTestRun] = useState<{ id: string; doc: JsonObject } | null>(null);
  const runOverlay = useRunOverlay(testRun?.id ?? null, testRun?.doc);
  const overlay = useMemo<Record<string, NodeOverlay> | undefined>(
    () => p.overlay ?? (testRun ? Object.fromEntries(runOverlay) : undefined),
    [p.overlay, testRun, runOverlay],
  );

  const commit = (next: Partial<BuilderState>, group?: string) => hist.commit((s) => ({ ckp: next.ckp ?? s.ckp, layout: next.layout ?? s.layout }), group);
  const commitDoc = (doc: JsonObject, group?: string) => hist.commit((s) => ({ ckp: doc, layout: withLayout(doc, s.layout) }), group);

  // ---- the CKP text view ----
  const [text, setText] = useState(() => JSON.stringify(ckp, null, 2));
  const [textError, setTextError] = useState<string | null>(null);
  useEffect(() => {
    // The document changed elsewhere (the builder, undo): show it, unless the text already says the same.
    let same = false;
    try {
      same = jsonEqual(JSON.parse(text), ckp);
    } catch {
      same = false;
    }
    if (!same) {
      setText(JSON.stringify(ckp, null, 2));
      setTextError(null);
    }
  }, [ckp]);
  const onText = (t: string) => {
    setText(t);
    try {
      const v = JSON.parse(t);
      if (!isObject(v)) throw new Error('the document must be a JSON object');
      setTextError(null);
      if (!jsonEqual(v, ckp)) commitDoc(v, 'text');
    } catch (e) {
      setTextError((e as Error).message);
    }
  };

  // ---- validation as you edit ----
  const [validation, setValidation] = useState<ValidateOut | null>(null);
  const [validating, setValidating] = useState(false);
  const body: JsonObject | string = tab === 'ckp' && textError ? text : ckp;
  useEffect(() => {
    const ctl = new AbortController();
    const t = window.setTimeout(() => {
      setValidating(true);
      validate(body, ctl.signal)
        .then((v) => {
          setValidation(v);
          setServerErrors(null);
        })
        .catch((e) => {
          if ((e as Error).name !== 'AbortError') setValidation(null);
        })
        .finally(() => setValidating(false));
    }, 500);
    return () => {
      window.clearTimeout(t);
      ctl.abort();
    };
  }, [body]);
  const diagnostics = useMemo<Diagnostic[]>(
    () => serverErrors ?? [...(validation?.errors ?? []), ...(validation?.warnings ?? [])],
    [validation, serverErrors],
  );
  const problems = useMemo(() => {
    const out: Record<string, Diagnostic[]> = {};
    for (const d of diagnostics) {
      const id = pointerNode(d.pointer);
      if (id) (out[id] ??= []).push(d);
    }
    return out;
  }, [diagnostics]);
  const errorCount = diagnostics.filter((d) => d.severity === 'error').length;

  // ---- autosave of the draft ----
  const [saveState, setSaveState] = useState<SaveState>(p.baseVersion ? 'saved' : 'local');
  const [conflict, setConflict] = useState<DraftOut | null>(null);
  // The conflict dialog can be closed (Escape) and opened again; autosave waits until the conflict is resolved.
  const [conflictOpen, setConflictOpen] = useState(false);
  const revision = useRef(p.revision);
  const savedState = useRef<BuilderState>(p.initial);
  const dirty = hist.state !== savedState.current;
  const latest = useRef(hist.state);
  latest.current = hist.state;
  // One write at a time: a write waits for the one before it, then sends the revision that one answered.
  const chain = useRef<Promise<void>>(Promise.resolve());
  const write = async (state: BuilderState, rev: number) => {
    if (!p.baseVersion) return;
    setSaveState('saving');
    const draft: Draft = { ckp: state.ckp, layout: state.layout, base_version: p.baseVersion };
    try {
      const out = await putDraft(procedureIdOf(p.initial.ckp), p.baseVersion, draft, rev);
      revision.current = out.revision;
      savedState.current = state;
      setSaveState(latest.current === state ? 'saved' : 'pending');
    } catch (e) {
      if (e instanceof ApiError && e.status === 409 && e.code === 'draft_conflict') {
        setConflict((e.detail as DraftConflict).current);
        setConflictOpen(true);
        setSaveState('conflict');
      } else {
        setSaveState('error');
        toast.error(e);
      }
    }
  };
  const save = (state: BuilderState, rev?: number) => {
    chain.current = chain.current.then(() => write(state, rev ?? revision.current));
  };
  useEffect(() => {
    if (!p.baseVersion || !dirty || conflict) return;
    setSaveState('pending');
    const t = window.setTimeout(() => save(hist.state), 1200);
    return () => window.clearTimeout(t);
  }, [hist.state, conflict]);
  useEffect(() => {
    const warn = (e: BeforeUnloadEvent) => {
      if ((p.baseVersion ? dirty : hist.canUndo) && !saving) e.preventDefault();
    };
    window.addEventListener('beforeunload', warn);
    return () => window.removeEventListener('beforeunload', warn);
  }, [dirty, hist.canUndo, saving]);

  // Leaving the page: a pending autosave is written first; changes that cannot be kept (a new procedure never
  // saved, a draft the server refused) are confirmed.
  const confirm = useConfirm();
  const leaving = useRef(false);
  const unkept = p.baseVersion ? saveState === 'error' || saveState === 'conflict' : hist.canUndo;
  const unsaved = unkept || saveState === 'pending' || saveState === 'saving';
  const blocker = useBlocker(({ currentLocation, nextLocation }) => unsaved && !leaving.current && currentLocation.pathname !== nextLocation.pathname);
  useEffect(() => {
    if (blocker.state !== 'blocked') return;
    if (!unkept) {
      save(latest.current);
      void chain.current.then(() => blocker.proceed());
      return;
    }
    void confirm({
      title: 'Leave the builder?',
      message: p.baseVersion ? 'The draft could not be saved on the server; your latest changes are lost if you leave.' : 'This new procedure is not saved yet: save a version first, or lose it.',
      confirm: 'Leave',
      danger: true,
    }).then((ok) => (ok ? blocker.proceed() : blocker.reset()));
  }, [blocker.state]);

  // ---- edits ----
  const addAt = (type: NodeType, at?: { x: number; y: number }) => {
    const r = addNode(ckp, type);
    let pos = at ?? canvas.current?.center() ?? { x: 0, y: 0 };
    // A click adds at the middle of the view: step down past nodes already there, so new nodes do not pile up.
    if (!at) {
      const busy = (q: { x: number; y: number }) => Object.values(layout).some((l) => Math.abs(l.x - q.x) < NODE_W && Math.abs(l.y - q.y) < NODE_H + 20);
      for (let i = 0; i < 50 && busy(pos); i++) pos = { x: pos.x, y: pos.y + NODE_H + 40 };
    }
    commit({ ckp: r.doc, layout: { ...layout, [r.id]: pos } });
    setSelected([r.id]);
    setSelectedEdge(null);
  };
  const removeNodes = (ids: string[]) => {
    if (ids.length === 0) return;
    let doc = ckp;
    const lay = { ...layout };
    for (const id of ids) {
      doc = deleteNode(doc, id);
      delete lay[id];
    }
    commit({ ckp: doc, layout: lay });
    setSelected([]);
  };
  const rename = (from: string, to: string): string | null => {
    try {
      const doc = renameNode(ckp, from, to);
      const lay: Layout = {};
      for (const [k, v] of Object.entries(layout)) lay[k === from ? to : k] = v;
      commit({ ckp: doc, layout: lay });
      setSelected([to]);
      return null;
    } catch (e) {
      return (e as Error).message;
    }
  };
  const copy = (ids: string[]) => {
    const nodes = nodesOf(ckp);
    const picked = Object.fromEntries(ids.filter((id) => isObject(nodes[id])).map((id) => [id, nodes[id] as JsonObject]));
    if (Object.keys(picked).length === 0) return false;
    clipboard = { nodes: picked, layout: Object.fromEntries(ids.map((id) => [id, layout[id] ?? { x: 0, y: 0 }])) };
    return true;
  };
  const paste = () => {
    if (!clipboard) return;
    const r = pasteNodes(ckp, clipboard.nodes);
    const lay = { ...layout };
    for (const [old, id] of Object.entries(r.ids)) {
      const at = clipboard.layout[old] ?? { x: 0, y: 0 };
      lay[id] = { x: at.x + NODE_W + 40, y: at.y + 30 };
    }
    commit({ ckp: r.doc, layout: lay });
    setSelected(Object.values(r.ids));
  };
  const duplicate = (ids: string[]) => {
    if (copy(ids)) paste();
  };

  // ---- keyboard ----
  const keys = useRef<(e: KeyboardEvent) => void>(() => {});
  keys.current = (e: KeyboardEvent) => {
    const mod = e.ctrlKey || e.metaKey;
    // Not behind an open dialog (saving, a conflict, a confirmation).
    if (!mod || document.querySelector('dialog[open]')) return;
    const k = e.key.toLowerCase();
    if (k === 'z' && !e.shiftKey) {
      e.preventDefault();
      hist.undo();
    } else if ((k === 'z' && e.shiftKey) || k === 'y') {
      e.preventDefault();
      hist.redo();
    } else if (tab === 'builder' && !editingText(document.activeElement)) {
      if (k === 'c' && selected.length) {
        copy(selected);
        e.preventDefault();
      } else if (k === 'v' && clipboard) {
        paste();
        e.preventDefault();
      } else if (k === 'd' && selected.length) {
        duplicate(selected);
        e.preventDefault();
      }
    }
  };
  useEffect(() => {
    const h = (e: KeyboardEvent) => keys.current(e);
    window.addEventListener('keydown', h);
    return () => window.removeEventListener('keydown', h);
  }, []);

  const one = selected.length === 1 ? selected[0] : null;
  const variables = useMemo(() => knownVariables(ckp, one), [ckp, one]);
  const [problemsOpen, setProblemsOpen] = useState(true);
  // A problem clicked in the CKP view selects its text there; in the builder, its node.
  const [focusPointer, setFocusPointer] = useState<string | null>(null);
  const goTo = (d: Diagnostic) => {
    if (tab === 'ckp') {
      // A new string each time, so clicking the same problem twice selects it again.
      setFocusPointer(null);
      window.setTimeout(() => setFocusPointer(d.pointer), 0);
      return;
    }
    const id = pointerNode(d.pointer);
    if (!id || !isObject(nodesOf(ckp)[id])) return;
    setTab('builder');
    setSelected([id]);
    setSelectedEdge(null);
    window.setTimeout(() => canvas.current?.focusNode(id), 50);
  };

  const saveLabel: Record<SaveState, string> = {
    saved: 'Draft saved',
    pending: 'Unsaved changes',
    saving: 'Saving draft…',
    error: 'Draft not saved',
    conflict: 'Draft conflict',
    local: hist.canUndo ? 'Not saved yet' : 'New procedure',
  };

  return (
    <div className="builder">
      {p.notice}
      <div className="builder-bar">
        <div className="segmented" role="group" aria-label="View">
          <button aria-pressed={tab === 'builder'} onClick={() => setTab('builder')}>
            Builder
          </button>
          <button aria-pressed={tab === 'ckp'} onClick={() => setTab('ckp')}>
            CKP
          </button>
          <button aria-pressed={tab === 'test'} onClick={() => setTab('test')}>
            Test
          </button>
        </div>
        <button className="small" onClick={hist.undo} disabled={!hist.canUndo} title="Undo (Ctrl+Z)">
          Undo
        </button>
        <button className="small" onClick={hist.redo} disabled={!hist.canRedo} title="Redo (Ctrl+Shift+Z)">
          Redo
        </button>
        <span className={`bsave s-${saveState}`} role="status" aria-label="Draft state">
          {saveLabel[saveState]}
        </span>
        {conflict && !conflictOpen && (
          <button className="small danger" onClick={() => setConflictOpen(true)}>
            Resolve the conflict
          </button>
        )}
        <span className={`bvalid ${errorCount ? 'err' : 'ok'}`} role="status" aria-label="Validation">
          {validating ? 'Checking…' : validation || serverErrors ? (errorCount ? `${errorCount} error${errorCount === 1 ? '' : 's'}` : 'Valid') : ''}
        </span>
        {testRun && (
          <span className="btestrun">
            Showing test run <span className="mono">{testRun.id.slice(0, 8)}</span>
            <button className="ghost small" onClick={() => setTestRun(null)}>
              Clear
            </button>
          </span>
        )}
        <span className="spacer" />
        <button className="primary" onClick={() => setSaving(true)}>
          Save as new version
        </button>
      </div>
      {tab === 'builder' ? (
        <div className="builder-main">
          <Palette onAdd={(t) => addAt(t)} />
          <BuilderCanvas
            ref={canvas}
            doc={ckp}
            layout={layout}
            selected={selected}
            selectedEdge={selectedEdge}
            problems={problems}
            overlay={overlay}
            onSelect={(ns, edge) => {
              setSelected(ns);
              setSelectedEdge(edge);
            }}
            onMove={(lay) => commit({ layout: lay })}
            onConnect={(source, kind, target) => {
              const r = connect(ckp, source, kind, target);
              commit({ ckp: r.doc });
              setSelected([source]);
            }}
            onReconnect={(edge, target) => commit({ ckp: retarget(ckp, edge.source, edge.slot, target) })}
            onDelete={(ns, es) => {
              let doc = ckp;
              // Highest slot first within a node, so removing list entries does not shift the others.
              for (const e of [...es].sort((a, b) => b.id.localeCompare(a.id, undefined, { numeric: true }))) {
                if (!ns.includes(e.source)) doc = disconnect(doc, e.source, e.slot);
              }
              const lay = { ...layout };
              for (const id of ns) {
                doc = deleteNode(doc, id);
                delete lay[id];
              }
              commit({ ckp: doc, layout: lay });
              setSelected([]);
              setSelectedEdge(null);
            }}
            onDropType={(t, at) => addAt(t, at)}
            onAutoLayout={() => {
              commit({ layout: autoLayout(ckp) });
              window.setTimeout(() => canvas.current?.fit(), 50);
            }}
          />
          <Inspector
            doc={ckp}
            selected={one}
            edge={selectedEdge ? (graphOf(ckp).edges.find((e) => e.id === selectedEdge) ?? null) : null}
            onRetarget={(edge, target) => commit({ ckp: retarget(ckp, edge.source, edge.slot, target) })}
            onDisconnect={(edge) => {
              commit({ ckp: disconnect(ckp, edge.source, edge.slot) });
              setSelectedEdge(null);
            }}
            variables={variables}
            actions={p.actions}
            channels={p.channels}
            problems={one ? (problems[one] ?? []) : []}
            onChange={(doc, group) => commitDoc(doc, group)}
            onRename={rename}
            onSetStart={(id) => commit({ ckp: setStart(ckp, id) })}
            onDelete={(id) => removeNodes([id])}
            onDuplicate={(id) => duplicate([id])}
          />
        </div>
      ) : tab === 'ckp' ? (
        <div className="builder-text">
          <CkpEditor value={text} onChange={onText} diagnostics={diagnostics} focusPointer={focusPointer} height="100%" />
          {textError && (
            <div className="banner error" role="alert">
              Not valid JSON: {textError}. The builder keeps the last valid document until this parses.
            </div>
          )}
        </div>
      ) : null}
      <div className="builder-test" hidden={tab !== 'test'}>
        {p.baseVersion ? (
          <TestRunPanel
            procedureId={String(ckp.procedure_id ?? '')}
            version={p.baseVersion}
            getDoc={() => ckp}
            nodeIds={nodeIds(ckp)}
            onRunStarted={(id) => setTestRun({ id, doc: ckp })}
          />
        ) : (
          <p className="muted">Save a first version: test runs run a draft of an existing version.</p>
        )}
      </div>
      <section className={`bproblems ${problemsOpen ? 'open' : ''}`} aria-label="Problems">
        <button className="ghost small bproblems-toggle" aria-expanded={problemsOpen} onClick={() => setProblemsOpen((o) => !o)}>
          Problems ({diagnostics.length}){serverErrors ? ' — refused by the server' : ''}
        </button>
        {problemsOpen && (
          <ul>
            {diagnostics.length === 0 && <li className="muted">No problem found.</li>}
            {diagnostics.map((d, i) => {
              const id = pointerNode(d.pointer);
              return (
                <li key={i} className={d.severity}>
                  <button className="ghost small" disabled={tab === 'builder' && !id} onClick={() => goTo(d)}>
                    <span className={`badge ${d.severity === 'error' ? 'err' : 'warn'}`}>{d.severity}</span>
                    {id && <span className="mono">{id}</span>}
                    <span>{d.message}</span>
                    <span className="muted mono">{d.pointer || '(document)'}</span>
                  </button>
                </li>
              );
            })}
          </ul>
        )}
      </section>
      {saving && (
        <SaveDialog
          ckp={ckp}
          baseId={p.baseVersion ? procedureIdOf(p.initial.ckp) : null}
          baseVersion={p.baseVersion}
          projectId={p.projectId}
          onClose={() => setSaving(false)}
          onRefused={(errors) => {
            setServerErrors(errors);
            setProblemsOpen(true);
            setSaving(false);
          }}
          onSaved={(v) => {
            leaving.current = true;
            savedState.current = hist.state;
            setSaving(false);
            p.onSaved(procedureIdOf(ckp), v);
          }}
        />
      )}
      {conflict && conflictOpen && (
        <ConflictDialog
          onClose={() => setConflictOpen(false)}
          mine={{ ckp, layout, base_version: p.baseVersion ?? '' }}
          theirs={conflict}
          onKeepMine={() => {
            const rev = conflict.revision;
            setConflict(null);
            save(hist.state, rev);
          }}
          onTakeTheirs={() => {
            const d = conflict.draft;
            revision.current = conflict.revision;
            setConflict(null);
            if (d && isObject(d.ckp)) {
              const next = { ckp: d.ckp, layout: withLayout(d.ckp, d.layout ?? {}) };
              savedState.current = next;
              hist.commit(next);
            }
            setSaveState('saved');
          }}
        />
      )}
    </div>
  );
}

function procedureIdOf(ckp: JsonObject): string {
  return typeof ckp.procedure_id === 'string' ? ckp.procedure_id : '';
}

function Palette({ onAdd }: { onAdd: (t: NodeType) => void }) {
  return (
    <nav className="bpalette" aria-label="Node palette">
      {PALETTE.map((g) => (
        <div key={g.group} className="bpalette-group">
          <h3>{g.group}</h3>
          {g.types.map((t) => (
            <button
              key={t}
              className={`bpalette-item t-${t}`}
              draggable
              onDragStart={(e) => {
                e.dataTransfer.setData(DRAG_TYPE, t);
                e.dataTransfer.effectAllowed = 'copy';
              }}
              onClick={() => onAdd(t)}
              aria-label={`Add ${TYPE_LABELS[t]} node`}
              title="Click to add, or drag onto the canvas"
            >
              <span className={`bdot t-${t}`} aria-hidden="true" />
              {TYPE_LABELS[t]}
            </button>
          ))}
        </div>
      ))}
      <p className="muted small">Connect: drag from a labelled handle at the bottom of a node to another node. Delete: select, then Delete.</p>
    </nav>
  );
}

/** Loads the server's draft of a version (or null when there is none). */
export async function loadDraft(procedureId: string, version: string): Promise<DraftOut | null> {
  try {
    return await getDraft(procedureId, version);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return null;
    throw e;
  }
}
