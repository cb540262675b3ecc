// A procedure's graph (`GET /api/procedures/{id}/{version}/graph`) laid out with dagre and drawn with React Flow,
// with an optional live overlay: node states, visit counts (loops), edge traversal counts, the current node.
// Loaded on demand (it is the largest piece of the console).
import { Graph, layout } from '@dagrejs/dagre';
import {
  Background,
  Controls,
  Handle,
  MiniMap,
  Position,
  ReactFlow,
  getNodesBounds,
  getViewportForBounds,
  useReactFlow,
  ReactFlowProvider,
  type Edge,
  type Node,
  type NodeProps,
} from '@xyflow/react';
import '@xyflow/react/dist/style.css';
import { useMemo } from 'react';
import { effectiveTheme, storedTheme } from '../lib/theme';

export interface GraphJson {
  nodes: { id: string; type: string; data: { label: string; nodeType: string; agent?: string | null; isStart?: boolean; isEnd?: boolean; stepCount?: number } }[];
  edges: { id: string; source: string; target: string; label?: string; animated?: boolean }[];
}

export type NodeState = 'running' | 'completed' | 'failed' | 'waiting' | 'skipped';

/** How a node or an edge differs from another version of the procedure (the version diff). */
export type DiffMark = 'added' | 'removed' | 'changed';

export interface Overlay {
  /** State of each node that has been entered. */
  states?: Record<string, NodeState>;
  /** How many times each node was entered (loops, retries of a path). */
  visits?: Record<string, number>;
  /** How many times each edge `source->target` was taken. */
  edges?: Record<string, number>;
  /** The node the run is at now. */
  current?: string | null;
}

interface CkpNodeData extends Record<string, unknown> {
  label: string;
  nodeType: string;
  agent?: string | null;
  isStart?: boolean;
  state?: NodeState;
  visits?: number;
  current?: boolean;
  selected?: boolean;
  diff?: DiffMark;
}

function CkpNode({ data }: NodeProps<Node<CkpNodeData>>) {
  const cls = ['gnode', data.state ? `state-${data.state}` : '', data.diff ? `diff-${data.diff}` : '', data.selected ? 'selected' : ''].join(' ');
  return (
    <div className={cls} data-state={data.state ?? 'idle'} data-diff={data.diff}>
      <Handle type="target" position={Position.Top} />
      <div className="kind">
        {data.nodeType.replace(/_/g, ' ')}
        {data.isStart ? ' · start' : ''}
      </div>
      <div className="title" title={data.label}>
        {data.label}
      </div>
      <div className="meta">
        {data.agent && <span>{data.agent}</span>}
        {data.state && <span>{data.state}</span>}
        {(data.visits ?? 0) > 1 && <span aria-label={`entered ${data.visits} times`}>×{data.visits}</span>}
        {data.current && <span>◀ now</span>}
        {data.diff && <span className="diff-tag">{data.diff}</span>}
      </div>
      <Handle type="source" position={Position.Bottom} />
    </div>
  );
}

const nodeTypes = { ckp: CkpNode };
const W = 200;
const H = 70;

function laidOut(graph: GraphJson): Record<string, { x: number; y: number }> {
  const g = new Graph();
  g.setGraph({ rankdir: 'TB', nodesep: 40, ranksep: 60 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of graph.nodes) g.setNode(n.id, { width: W, height: H });
  for (const e of graph.edges) if (e.source !== e.target) g.setEdge(e.source, e.target);
  layout(g);
  const pos: Record<string, { x: number; y: number }> = {};
  for (const n of graph.nodes) {
    const p = g.node(n.id);
    pos[n.id] = { x: (p?.x ?? 0) - W / 2, y: (p?.y ?? 0) - H / 2 };
  }
  return pos;
}

export interface ProcedureGraphProps {
  graph: GraphJson;
  overlay?: Overlay;
  selected?: string | null;
  onSelect?: (nodeId: string) => void;
  label: string;
  height?: number;
  /** Version diff marks by node id. */
  marks?: Record<string, DiffMark>;
  /** Version diff marks of edges, by `source->target`. */
  edgeMarks?: Record<string, 'added' | 'removed'>;
}

export default function ProcedureGraph(props: ProcedureGraphProps) {
  return (
    <ReactFlowProvider>
      <Inner {...props} />
    </ReactFlowProvider>
  );
}

function Inner({ graph, overlay, selected, onSelect, label, height, marks, edgeMarks }: ProcedureGraphProps) {
  const positions = useMemo(() => laidOut(graph), [graph]);
  const nodes = useMemo<Node<CkpNodeData>[]>(
    () =>
      graph.nodes.map((n) => ({
        id: n.id,
        type: 'ckp',
        position: positions[n.id],
        // The laid-out size until measured: the minimap draws only nodes with dimensions, and this controlled graph
        // never takes the measured ones back into its nodes.
        initialWidth: W,
        initialHeight: H,
        ariaLabel: `${n.data.nodeType} node ${n.data.label}${overlay?.states?.[n.id] ? `, ${overlay.states[n.id]}` : ''}${marks?.[n.id] ? `, ${marks[n.id]}` : ''}`,
        data: {
          label: n.data.label,
          nodeType: n.data.nodeType,
          agent: n.data.agent,
          isStart: n.data.isStart,
          state: overlay?.states?.[n.id],
          visits: overlay?.visits?.[n.id],
          current: overlay?.current === n.id,
          selected: selected === n.id,
          diff: marks?.[n.id],
        },
      })),
    [graph, positions, overlay, selected, marks],
  );
  const edges = useMemo<Edge[]>(
    () =>
      graph.edges.map((e) => {
        const taken = overlay?.edges?.[`${e.source}->${e.target}`] ?? 0;
        const text = [e.label, taken ? `×${taken}` : ''].filter(Boolean).join(' ');
        const mark = edgeMarks?.[`${e.source}->${e.target}`];
        return {
          id: e.id,
          source: e.source,
          target: e.target,
          label: text || undefined,
          animated: !!overlay?.current && e.source === overlay.current,
          style: mark
            ? { strokeWidth: 2.5, stroke: mark === 'added' ? 'var(--ok)' : 'var(--err)', strokeDasharray: mark === 'removed' ? '6 4' : undefined }
            : taken
              ? { strokeWidth: 2.5, stroke: 'var(--ok)' }
              : undefined,
        };
      }),
    [graph, overlay, edgeMarks],
  );
  return (
    <div className="graph" style={height ? { height } : undefined} role="figure" aria-label={label}>
      <ReactFlow
        nodes={nodes}
        edges={edges}
        nodeTypes={nodeTypes}
        colorMode={effectiveTheme(storedTheme())}
        fitView
        minZoom={0.1}
        nodesDraggable={false}
        nodesConnectable={false}
        elementsSelectable
        onNodeClick={(_, n) => onSelect?.(n.id)}
        onNodesChange={(changes) => {
          // Keyboard selection (Tab to a node, Enter) reaches here as a select change.
          for (const c of changes) if (c.type === 'select' && c.selected) onSelect?.(c.id);
        }}
        proOptions={{ hideAttribution: true }}
      >
        <Background />
        <Controls showInteractive={false} />
        <MiniMap pannable zoomable ariaLabel="Mini map" />
        <ExportButtons />
      </ReactFlow>
    </div>
  );
}

/** Exports the drawing as SVG (the nodes and edges as they are on screen). */
function ExportButtons() {
  const flow = useReactFlow();
  const exportSvg = () => {
    const root = document.querySelector('.react-flow__viewport');
    const edges = document.querySelector('.react-flow__edges');
    if (!root || !edges) return;
    const bounds = getNodesBounds(flow.getNodes());
    const vp = getViewportForBounds(bounds, bounds.width + 40, bounds.height + 40, 1, 1, 20);
    const svg = [`<svg xmlns="http://www.w3.org/2000/svg" width="${bounds.width + 40}" height="${bounds.height + 40}">`,
      `<g transform="translate(${vp.x},${vp.y})">`];
    for (const n of flow.getNodes()) {
      const d = n.data as CkpNodeData;
      svg.push(`<rect x="${n.position.x}" y="${n.position.y}" width="${W}" height="${H - 10}" rx="8" fill="#fff" stroke="#888"/>`,
        `<text x="${n.position.x + 10}" y="${n.position.y + 24}" font-family="sans-serif" font-size="13">${escapeXml(d.label)}</text>`,
        `<text x="${n.position.x + 10}" y="${n.position.y + 44}" font-family="sans-serif" font-size="11" fill="#666">${escapeXml(d.nodeType)}${d.state ? ` · ${d.state}` : ''}</text>`);
    }
    svg.push(edges.innerHTML, '</g></svg>');
    const url = URL.createObjectURL(new Blob([svg.join('')], { type: 'image/svg+xml' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = 'graph.svg';
    a.click();
    URL.revokeObjectURL(url);
  };
  return (
    <div style={{ position: 'absolute', right: 10, top: 10, zIndex: 5 }}>
      <button className="small" onClick={exportSvg}>
        Export SVG
      </button>
    </div>
  );
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c] ?? c);
}
