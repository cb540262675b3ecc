// A fast check of the builder's document model (src/features/builder/model.ts) over every CKP document in
// ../examples and e2e/procedures, with plain node: the model is bundled with esbuild (Vite's own) and imported.
//   * opened and saved without edits: the same JSON value;
//   * every node renamed: no edge, start_node or on_failure still names the old id, the edge count is the same,
//     and renaming it back gives the original;
//   * every single-valued edge disconnected then connected again: the original (list edges: one entry fewer, then
//     the same target reachable again);
//   * every node deleted: no edge to it is left;
//   * the variables offered at a node are those written before it.
// Exits 1 with the failures listed.
import { build } from 'esbuild';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const web = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = await build({
  entryPoints: [join(web, 'src/features/builder/model.ts')],
  bundle: true,
  write: false,
  format: 'esm',
  platform: 'node',
});
const m = await import(`data:text/javascript;base64,${Buffer.from(out.outputFiles[0].text).toString('base64')}`);

const files = [
  ...readdirSync(join(web, '../examples')).filter((f) => f.endsWith('.json')).map((f) => join(web, '../examples', f)),
  ...readdirSync(join(web, 'e2e/procedures')).filter((f) => f.endsWith('.json')).map((f) => join(web, 'e2e/procedures', f)),
];
const failures = [];
const fail = (file, what) => failures.push(`${file.replace(web + '/', '')}: ${what}`);
const SINGLE = new Set(['next', 'default', 'body', 'approve', 'reject', 'timeout']);
let checks = 0;

for (const file of files) {
  const original = JSON.parse(readFileSync(file, 'utf8'));
  const doc = structuredClone(original);
  const g = m.graphOf(doc);
  checks++;
  if (!m.jsonEqual(JSON.parse(JSON.stringify(doc)), original)) fail(file, 'not the same value unedited');
  if (g.nodes.length !== Object.keys(original.workflow_graph.nodes).length) fail(file, 'node count differs');
  for (const n of g.nodes) {
    checks++;
    const tmp = `${n.id}__renamed`;
    const renamed = m.renameNode(doc, n.id, tmp);
    const g2 = m.graphOf(renamed);
    if (g2.edges.length !== g.edges.length) fail(file, `rename ${n.id}: ${g.edges.length} edges became ${g2.edges.length}`);
    if (g2.edges.some((e) => e.target === n.id)) fail(file, `rename ${n.id}: an edge still names the old id`);
    if (m.startNode(renamed) === n.id || m.failureHandler(renamed) === n.id) fail(file, `rename ${n.id}: start/on_failure not updated`);
    if (Object.keys(m.nodesOf(renamed)).indexOf(tmp) !== Object.keys(m.nodesOf(doc)).indexOf(n.id)) fail(file, `rename ${n.id}: moved in the node map`);
    if (!m.jsonEqual(m.renameNode(renamed, tmp, n.id), original)) fail(file, `rename ${n.id} and back: not the original`);
    const deleted = m.deleteNode(doc, n.id);
    if (m.graphOf(deleted).edges.some((e) => e.target === n.id)) fail(file, `delete ${n.id}: an edge to it is left`);
  }
  for (const e of g.edges) {
    checks++;
    const cut = m.disconnect(doc, e.source, e.slot);
    const left = m.graphOf(cut).edges;
    if (left.some((x) => x.id === e.id && x.target === e.target && x.kind === e.kind && !m.LIST_KINDS.includes(e.kind)))
      fail(file, `disconnect ${e.id}: still there`);
    if (left.length !== g.edges.length - 1 && e.kind !== 'escalation') fail(file, `disconnect ${e.id}: ${g.edges.length} edges became ${left.length}`);
    if (SINGLE.has(e.kind)) {
      const back = m.connect(cut, e.source, e.kind, e.target);
      if (!m.jsonEqual(back.doc, original)) fail(file, `disconnect and connect ${e.id}: not the original`);
    } else {
      const back = m.connect(cut, e.source, e.kind, e.target);
      if (!m.graphOf(back.doc).edges.some((x) => x.source === e.source && x.kind === e.kind && x.target === e.target))
        fail(file, `disconnect and connect ${e.id}: the edge is not back`);
    }
  }
  if (!m.jsonEqual(doc, original)) fail(file, 'an edit changed the input document (edits must be pure)');
}

// Variables known at a node: declared ones and what the nodes before it write, not what comes after.
{
  const file = join(web, '../examples/invoice_processing.ckp.json');
  const doc = JSON.parse(readFileSync(file, 'utf8'));
  const atRoute = m.knownVariables(doc, 'route');
  const atIngest = m.knownVariables(doc, 'ingest');
  for (const v of ['document_url', 'erp_system', 'document', 'vendor', 'risk_score', 'purchase_order']) if (!atRoute.includes(v)) fail(file, `${v} not known at route`);
  if (atIngest.includes('risk_score') || atRoute.includes('erp_record')) fail(file, 'a variable written later is offered');
  checks++;
}

if (failures.length) {
  console.error(`builder model: ${failures.length} failure(s)\n  ${failures.join('\n  ')}`);
  process.exit(1);
}
console.log(`builder model: ${files.length} documents, ${checks} checks passed`);
