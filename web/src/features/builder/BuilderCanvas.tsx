// The builder's canvas (React Flow): the document's nodes where the layout puts them, one output handle per edge
// kind a node can start, edges styled by kind. Dragging a node, connecting two handles, reconnecting or deleting an
// edge, deleting nodes and dropping a palette item all come back as edits of the document through the callbacks.
import { Graph as Dagre, layout as dagreLayout } from '@dagrejs/dagre';
import {
  Background,
  Controls,
  Handle,
  MiniMap,
  Position,
  ReactFlow,
  ReactFlowProvider,
  applyNodeChanges,
  useReactFlow,
  type Connection,
  type Edge,
  type Node,
  type NodeChange,
  type NodeProps,
} from '@xyflow/react';
import '@xyflow/react/dist/style.css';
import { forwardRef, memo, useEffect, useImperativeHandle, useMemo, useRef, useState, type DragEvent } from 'react';
import { effectiveTheme, storedTheme } from '../../lib/theme';
import type { Diagnostic, Layout } from './api';
import { graphOf, kindLabel, outputKinds, TYPE_LABELS, type EdgeKind, type GraphEdge, type JsonObject, type NodeType } from './model';

export const NODE_W = 210;
export const NODE_H = 84;
export const DRAG_TYPE = 'application/x-ckp-node-type';

export interface NodeOverlay {
  status: 'running' | 'completed' | 'failed' | 'waiting' | string;
  output?: unknown;
}

interface BNodeData extends Record<string, unknown> {
  id: string;
  type: string;
  label: string;
  detail: string;
  isStart: boolean;
  isFailureHandler: boolean;
  problems: Diagnostic[];
  handles: EdgeKind[];
  overlay?: NodeOverlay;
}

function summary(type: string, node: JsonObject): string {
  const n = (k: string) => (Array.isArray(node[k]) ? (node[k] as unknown[]).length : 0);
  switch (type) {
    case 'sequence':
      return `${n('steps')} step${n('steps') === 1 ? '' : 's'}${node.agent ? ` · ${String(node.agent)}` : ''}`;
    case 'logic':
      return `${n('rules')} rule${n('rules') === 1 ? '' : 's'}`;
    case 'loop':
      return node.iterator ? `over ${String(node.iterator)}` : 'no iterator';
    case 'parallel':
      return `${n('branches')} branch${n('branches') === 1 ? '' : 'es'}`;
    case 'processing':
      return `${n('operations')} operation${n('operations') === 1 ? '' : 's'}`;
    case 'verification':
      return `${n('checks')} check${n('checks') === 1 ? '' : 's'}`;
    case 'llm_action':
      return node.model ? String(node.model) : 'default model';
    case 'terminate':
      return String(node.status ?? 'success');
    case 'subflow':
      return node.procedure_id ? `→ ${String(node.procedure_id)}` : 'no procedure';
    case 'human_approval':
      return String(node.decision_type ?? 'approve_reject').replace(/_/g, ' ');
    case 'transform':
      return `${n('transformations')} transformation${n('transformations') === 1 ? '' : 's'}`;
    default:
      return '';
  }
}

function preview(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}

const BNode = memo(function BNode({ data, selected }: NodeProps<Node<BNodeData>>) {
  const errors = data.problems.filter((d) => d.severity === 'error');
  const warnings = data.problems.filter((d) => d.severity !== 'error');
  const messages = data.problems.map((d) => `${d.severity}: ${d.message}`).join('\n');
  const cls = [
    'bnode',
    `t-${data.type}`,
    errors.length ? 'has-error' : warnings.length ? 'has-warning' : '',
    data.overlay ? `ov-${data.overlay.status}` : '',
    selected ? 'selected' : '',
  ].join(' ');
  const handles = data.handles;
  return (
    <div className={cls} data-node-id={data.id} title={messages || undefined}>
      <Handle type="target" position={Position.Top} className="bh-in" />
      <div className="bnode-kind">
        <span className="swatch" aria-hidden="true" />
        {TYPE_LABELS[data.type as NodeType] ?? data.type}
        <span className="bnode-marks">
          {data.isStart && <span className="bnode-start">start</span>}
          {data.isFailureHandler && <span className="bnode-flag" title="global_config.on_failure">on failure</span>}
        </span>
      </div>
      <div className="bnode-title" title={data.label}>
        {data.label}
      </div>
      <div className="bnode-meta">
        <span className="mono">{data.id !== data.label ? data.id : ''}</span>
        <span>{data.detail}</span>
      </div>
      {(errors.length > 0 || warnings.length > 0) && (
        <div className={`bnode-problems nodrag ${errors.length ? 'err' : 'warn'}`} role="note" aria-label={messages} tabIndex={0}>
          {errors.length > 0 ? `${errors.length} error${errors.length === 1 ? '' : 's'}` : `${warnings.length} warning${warnings.length === 1 ? '' : 's'}`}
          <div className="bnode-tip">{data.problems.map((d, i) => <div key={i}>{d.message}</div>)}</div>
        </div>
      )}
      {data.overlay && (
        <div className="bnode-overlay">
          <span className={`badge ${data.overlay.status === 'completed' ? 'ok' : data.overlay.status === 'failed' ? 'err' : 'info'}`}>{data.overlay.status}</span>
          {data.overlay.output !== undefined && <span className="mono" title={JSON.stringify(data.overlay.output, null, 2)}>{preview(data.overlay.output)}</span>}
        </div>
      )}
      <div className="bnode-outs" aria-hidden="true">
        {handles.map((k) => (
          <span key={k} className={`bout k-${k}`}>
            {kindLabel(k, data.type)}
          </span>
        ))}
      </div>
      {handles.map((k, i) => (
        <Handle
          key={k}
          id={k}
          type="source"
          position={Position.Bottom}
          className={`bh-out k-${k}`}
          style={{ left: `${((i + 0.5) / handles.length) * 100}%` }}
          title={`${kindLabel(k, data.type)}: drag to a node`}
        />
      ))}
    </div>
  );
});

const nodeTypes = { ckp: BNode };

/** Positions for the nodes of `doc` (dagre, top to bottom), keeping the positions of `keep` when given. */
export function autoLayout(doc: JsonObject, keep?: Layout): Layout {
  const g = graphOf(doc);
  const d = new Dagre();
  d.setGraph({ rankdir: 'TB', nodesep: 50, ranksep: 70 });
  d.setDefaultEdgeLabel(() => ({}));
  for (const n of g.nodes) d.setNode(n.id, { width: NODE_W, height: NODE_H });
  for (const e of g.edges) if (!e.dangling && e.source !== e.target) d.setEdge(e.source, e.target);
  dagreLayout(d);
  const out: Layout = {};
  for (const n of g.nodes) {
    const p = d.node(n.id);
    out[n.id] = keep?.[n.id] ?? { x: Math.round((p?.x ?? 0) - NODE_W / 2), y: Math.round((p?.y ?? 0) - NODE_H / 2) };
  }
  return out;
}

const EDGE_STYLE: Record<EdgeKind, { stroke: string; dash?: string }> = {
  next: { stroke: 'var(--b-edge)' },
  rule: { stroke: 'var(--b-logic)' },
  default: { stroke: 'var(--b-logic)', dash: '6 4' },
  body: { stroke: 'var(--b-loop)' },
  branch: { stroke: 'var(--b-parallel)' },
  choice: { stroke: 'var(--b-llm)', dash: '2 4' },
  approve: { stroke: 'var(--ok)' },
  reject: { stroke: 'var(--err)' },
  timeout: { stroke: 'var(--warn)', dash: '6 4' },
  fallback: { stroke: 'var(--err)', dash: '3 3' },
  escalation: { stroke: 'var(--warn)', dash: '2 3' },
};

export interface BuilderCanvasProps {
  doc: JsonObject;
  layout: Layout;
  selected: string[];
  selectedEdge: string | null;
  problems: Record<string, Diagnostic[]>;
  overlay?: Record<string, NodeOverlay>;
  onSelect: (nodes: string[], edge: string | null) => void;
  onMove: (layout: Layout) => void;
  onConnect: (source: string, kind: EdgeKind, target: string) => void;
  onReconnect: (edge: GraphEdge, target: string) => void;
  onDelete: (nodes: string[], edges: GraphEdge[]) => void;
  onDropType: (type: NodeType, at: { x: number; y: number }) => void;
  onAutoLayout: () => void;
}

export interface CanvasApi {
  /** The canvas position at the middle of what is visible (where a clicked palette item goes). */
  center(): { x: number; y: number };
  focusNode(id: string): void;
  fit(): void;
}

export const BuilderCanvas = forwardRef<CanvasApi, BuilderCanvasProps>(function BuilderCanvas(props, ref) {
  return (
    <ReactFlowProvider>
      <Inner {...props} apiRef={ref} />
    </ReactFlowProvider>
  );
});

function Inner({ apiRef, ...p }: BuilderCanvasProps & { apiRef: React.ForwardedRef<CanvasApi> }) {
  const flow = useReactFlow();
  const wrapper = useRef<HTMLDivElement>(null);
  const graph = useMemo(() => graphOf(p.doc), [p.doc]);
  const edgesById = useMemo(() => new Map(graph.edges.map((e) => [e.id, e])), [graph]);
  const selected = useMemo(() => new Set(p.selected), [p.selected]);

  const derived = useMemo<Node<BNodeData>[]>(() => {
    const byNode = new Map<string, EdgeKind[]>();
    for (const e of graph.edges) byNode.set(e.source, [...(byNode.get(e.source) ?? []), e.kind]);
    return graph.nodes.map((n, i) => {
      const kinds = outputKinds(n.type, n.node);
      for (const k of byNode.get(n.id) ?? []) if (!kinds.includes(k)) kinds.push(k);
      const label = typeof n.node.description === 'string' && n.node.description ? n.node.description : n.id;
      return {
        id: n.id,
        type: 'ckp',
        position: p.layout[n.id] ?? { x: (i % 4) * (NODE_W + 40), y: Math.floor(i / 4) * (NODE_H + 60) },
        selected: selected.has(n.id),
        ariaLabel: `${TYPE_LABELS[n.type as NodeType] ?? n.type} node ${n.id}${n.isStart ? ', start' : ''}${p.problems[n.id]?.some((d) => d.severity === 'error') ? ', has errors' : ''}`,
        data: {
          id: n.id,
          type: n.type,
          label,
          detail: summary(n.type, n.node),
          isStart: n.isStart,
          isFailureHandler: n.isFailureHandler,
          problems: p.problems[n.id] ?? [],
          handles: kinds,
          overlay: p.overlay?.[n.id],
        },
      };
    });
  }, [graph, p.layout, p.problems, p.overlay, selected]);

  // React Flow moves nodes while they are dragged: a local copy follows the drag, the layout is written at its end.
  const [nodes, setNodes] = useState(derived);
  useEffect(() => setNodes(derived), [derived]);

  const edges = useMemo<Edge[]>(
    () =>
      graph.edges
        .filter((e) => !e.dangling)
        .map((e) => {
          const s = EDGE_STYLE[e.kind];
          return {
            id: e.id,
            source: e.source,
            target: e.target,
            sourceHandle: e.kind,
            label: e.label ? (e.label.length > 36 ? `${e.label.slice(0, 35)}…` : e.label) : undefined,
            selected: p.selectedEdge === e.id,
            className: `bedge k-${e.kind}`,
            ariaLabel: `${e.kind} edge from ${e.source} to ${e.target}${e.label ? `: ${e.label}` : ''}`,
            style: { stroke: s.stroke, strokeDasharray: s.dash, strokeWidth: p.selectedEdge === e.id ? 3 : 1.6 },
            labelStyle: { fill: 'var(--text)', fontSize: 11 },
            labelBgStyle: { fill: 'var(--panel)' },
            interactionWidth: 14,
          };
        }),
    [graph, p.selectedEdge],
  );

  useImperativeHandle(
    apiRef,
    () => ({
      center() {
        const r = wrapper.current?.getBoundingClientRect();
        if (!r) return { x: 0, y: 0 };
        const c = flow.screenToFlowPosition({ x: r.left + r.width / 2, y: r.top + r.height / 2 });
        return { x: Math.round(c.x - NODE_W / 2), y: Math.round(c.y - NODE_H / 2) };
      },
      focusNode(id: string) {
        const n = flow.getNode(id);
        if (n) void flow.setCenter(n.position.x + NODE_W / 2, n.position.y + NODE_H / 2, { zoom: Math.max(flow.getZoom(), 0.9), duration: 200 });
      },
      fit() {
        void flow.fitView({ padding: 0.15, duration: 200 });
      },
    }),
    [flow],
  );

  const onNodesChange = (changes: NodeChange<Node<BNodeData>>[]) => {
    setNodes((ns) => applyNodeChanges(changes.filter((c) => c.type !== 'remove' && c.type !== 'select'), ns));
    const sel = changes.filter((c) => c.type === 'select');
    if (sel.length) {
      const next = new Set(p.selected);
      for (const c of sel) if (c.type === 'select') (c.selected ? next.add(c.id) : next.delete(c.id));
      const list = [...next];
      if (list.join() !== p.selected.join()) p.onSelect(list, null);
    }
    const ended = changes.filter((c) => c.type === 'position' && c.dragging === false && c.position);
    if (ended.length) {
      const layout = { ...p.layout };
      // Every node that moved in this drag (a multi-selection moves together).
      for (const n of nodes) if (selected.has(n.id) || ended.some((c) => c.type === 'position' && c.id === n.id)) layout[n.id] = n.position;
      for (const c of ended) if (c.type === 'position' && c.position) layout[c.id] = { x: Math.round(c.position.x), y: Math.round(c.position.y) };
      p.onMove(layout);
    }
  };

  const onDrop = (e: DragEvent) => {
    const type = e.dataTransfer.getData(DRAG_TYPE) as NodeType;
    if (!type) return;
    e.preventDefault();
    const at = flow.screenToFlowPosition({ x: e.clientX, y: e.clientY });
    p.onDropType(type, { x: Math.round(at.x - NODE_W / 2), y: Math.round(at.y - 20) });
  };

  return (
    <div className="bcanvas" ref={wrapper} onDragOver={(e) => { if (e.dataTransfer.types.includes(DRAG_TYPE)) { e.preventDefault(); e.dataTransfer.dropEffect = 'copy'; } }} onDrop={onDrop}>
      <ReactFlow
        nodes={nodes}
        edges={edges}
        nodeTypes={nodeTypes}
        colorMode={effectiveTheme(storedTheme())}
        onNodesChange={onNodesChange}
        onEdgeClick={(_, e) => p.onSelect([], e.id)}
        onPaneClick={() => p.onSelect([], null)}
        onConnect={(c: Connection) => {
          if (c.source && c.target && c.sourceHandle) p.onConnect(c.source, c.sourceHandle as EdgeKind, c.target);
        }}
        onConnectEnd={(event, state) => {
          // Dropped on a node's body rather than on its input handle: connect to that node all the same.
          if (state.isValid || !state.fromNode || !state.fromHandle?.id || state.fromHandle.type !== 'source') return;
          const pt = 'changedTouches' in event ? event.changedTouches[0] : event;
          const el = document.elementFromPoint(pt.clientX, pt.clientY)?.closest('.react-flow__node');
          const target = el?.getAttribute('data-id');
          if (target && graph.nodes.some((n) => n.id === target)) p.onConnect(state.fromNode.id, state.fromHandle.id as EdgeKind, target);
        }}
        connectionRadius={30}
        onReconnect={(old, c) => {
          const e = edgesById.get(old.id);
          if (e && c.target) p.onReconnect(e, c.target);
        }}
        onDelete={({ nodes: ns, edges: es }) => {
          const gone = es.map((e) => edgesById.get(e.id)).filter((e): e is GraphEdge => !!e);
          p.onDelete(ns.map((n) => n.id), gone);
        }}
        deleteKeyCode={['Delete', 'Backspace']}
        multiSelectionKeyCode={['Shift', 'Meta', 'Control']}
        fitView
        fitViewOptions={{ padding: 0.15 }}
        minZoom={0.1}
        maxZoom={2}
        proOptions={{ hideAttribution: true }}
      >
        <Background />
        <Controls showInteractive={false} />
        <MiniMap pannable zoomable ariaLabel="Mini map" style={{ width: 150, height: 100 }} nodeClassName={(n) => `mm t-${(n.data as BNodeData).type}`} />
        <div className="bcanvas-tools">
          <button className="small" onClick={p.onAutoLayout} title="Arrange the nodes top to bottom">
            Auto layout
          </button>
          <button className="small" onClick={() => void flow.fitView({ padding: 0.15, duration: 200 })}>
            Fit view
          </button>
        </div>
      </ReactFlow>
    </div>
  );
}
