// The inspector: the form of the selected node (its common fields, its type's fields, its edges, error handlers,
// SLA, and its whole JSON as a last resort), or of the procedure when no node is selected. Every change is an edit
// of the document passed to `onChange` with a group key, so typing in one field is one undo step.
import { useEffect, useState } from 'react';
import type { Diagnostic } from './api';
import { CheckField, JsonField, KeyValueField, NodeSelect, NumberField, SelectField, TemplateField, TextField, asObject } from './fields';
import {
  addStep,
  failureHandler,
  isObject,
  kindLabel,
  moveStep,
  nodeIds,
  nodesOf,
  nodeType,
  removeStep,
  setFailureHandler,
  setNode,
  setVariables,
  startNode,
  TYPE_LABELS,
  updateNodeAt,
  updateStep,
  variablesOf,
  type Json,
  type JsonObject,
  type NodeType,
  type GraphEdge,
  type Slot,
} from './model';

export interface InspectorProps {
  doc: JsonObject;
  selected: string | null;
  variables: string[];
  actions: { channel: string; name: string }[];
  channels: string[];
  problems: Diagnostic[];
  onChange: (doc: JsonObject, group: string) => void;
  onRename: (from: string, to: string) => string | null;
  onSetStart: (id: string) => void;
  onDelete: (id: string) => void;
  onDuplicate: (id: string) => void;
  /** The selected edge (when no node is). */
  edge: GraphEdge | null;
  onRetarget: (edge: GraphEdge, target: string) => void;
  onDisconnect: (edge: GraphEdge) => void;
}

export function Inspector(p: InspectorProps) {
  const node = p.selected ? nodesOf(p.doc)[p.selected] : undefined;
  return (
    <aside className="binspector" aria-label="Inspector">
      {p.selected && isObject(node) ? (
        <NodeForm {...p} id={p.selected} node={node} />
      ) : p.edge ? (
        <EdgeForm {...p} edge={p.edge} />
      ) : (
        <ProcedureForm {...p} />
      )}
    </aside>
  );
}

const EDGE_FIELDS: Record<string, string> = {
  next: 'next_node',
  rule: 'a rule of the logic node',
  default: 'default_next_node',
  body: 'body_node',
  branch: 'a branch of the parallel node',
  choice: 'a choice of the LLM (orchestration branches)',
  approve: 'on_approve',
  reject: 'on_reject',
  timeout: 'on_timeout',
  fallback: 'an error handler’s fallback_node',
  escalation: 'sla.escalation_handler',
};

function EdgeForm(p: InspectorProps & { edge: GraphEdge }) {
  const { edge } = p;
  return (
    <div className="bform">
      <div className="bform-head">
        <h2>
          {kindLabel(edge.kind, nodeType(asObject(nodesOf(p.doc)[edge.source])))} edge
        </h2>
        <div className="bform-actions">
          <button className="small danger" onClick={() => p.onDisconnect(edge)}>
            Delete edge
          </button>
        </div>
      </div>
      <dl className="props">
        <dt>From</dt>
        <dd className="mono">{edge.source}</dd>
        <dt>Field</dt>
        <dd>
          {EDGE_FIELDS[edge.kind]} <span className="muted mono">({edge.slot.join('/')})</span>
        </dd>
        {edge.label && (
          <>
            <dt>Label</dt>
            <dd className="mono">{edge.label}</dd>
          </>
        )}
      </dl>
      <NodeSelect label="To" value={edge.target} ids={nodeIds(p.doc)} onChange={(v) => v && p.onRetarget(edge, v)} />
    </div>
  );
}

function Section({ title, children, open = true }: { title: string; children: React.ReactNode; open?: boolean }) {
  return (
    <details className="bsection" open={open}>
      <summary>{title}</summary>
      <div className="bsection-body">{children}</div>
    </details>
  );
}

const s = (v: Json | undefined): string => (typeof v === 'string' ? v : v === undefined || v === null ? '' : JSON.stringify(v));
const list = (v: Json | undefined): Json[] => (Array.isArray(v) ? v : []);

function NodeForm(p: InspectorProps & { id: string; node: JsonObject }) {
  const { id, node, doc } = p;
  const type = nodeType(node);
  const ids = nodeIds(doc);
  /** Sets (or with undefined or "" removes) the value at `path` in this node. */
  const set = (path: Slot, v: Json | undefined, keepEmpty = false) =>
    p.onChange(updateNodeAt(doc, id, path, v === '' && !keepEmpty ? undefined : v), `${id}/${path.join('/')}`);
  const [idText, setIdText] = useState(id);
  const [idError, setIdError] = useState<string | null>(null);
  useEffect(() => {
    setIdText(id);
    setIdError(null);
  }, [id]);
  const isStart = startNode(doc) === id;
  const isFailure = failureHandler(doc) === id;
  const vars = p.variables;

  return (
    <div className="bform">
      <div className="bform-head">
        <h2>
          <span className={`bdot t-${type}`} aria-hidden="true" /> {TYPE_LABELS[type as NodeType] ?? type} node
        </h2>
        <div className="bform-actions">
          <button className="small" disabled={isStart} onClick={() => p.onSetStart(id)}>
            {isStart ? 'Start node' : 'Set as start node'}
          </button>
          <button className="small" onClick={() => p.onDuplicate(id)}>
            Duplicate
          </button>
          <button className="small danger" onClick={() => p.onDelete(id)}>
            Delete
          </button>
        </div>
      </div>
      {p.problems.length > 0 && (
        <ul className="bproblems-inline" aria-label={`Problems of ${id}`}>
          {p.problems.map((d, i) => (
            <li key={i} className={d.severity}>
              <span className="mono">{d.pointer.split('/').slice(4).join('/') || 'node'}</span> {d.message}
            </li>
          ))}
        </ul>
      )}
      <Section title="Node">
        <label className="bfield">
          Node id
          <input
            className="mono"
            value={idText}
            aria-invalid={idError !== null}
            onChange={(e) => setIdText(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === 'Enter') (e.target as HTMLInputElement).blur();
            }}
            onBlur={() => {
              if (idText === id) return;
              const err = p.onRename(id, idText.trim());
              setIdError(err);
              if (err) setIdText(id);
            }}
          />
          {idError ? <span className="field-error">{idError}</span> : <span className="field-help">Renaming updates every edge to this node.</span>}
        </label>
        <TextField label="Description" value={s(node.description)} onChange={(v) => set(['description'], v)} />
        {type !== 'terminate' && (
          <label className="bfield">
            Agent
            <input list="bchannels" value={s(node.agent)} onChange={(e) => set(['agent'], e.target.value)} placeholder="none (internal or HTTP)" />
            <datalist id="bchannels">
              {p.channels.map((c) => (
                <option key={c} value={c} />
              ))}
            </datalist>
          </label>
        )}
        <CheckField label="Checkpoint after this node" value={node.is_checkpoint === true} onChange={(v) => set(['is_checkpoint'], v || undefined)} />
        <CheckField label="Global failure handler (global_config.on_failure)" value={isFailure} onChange={(v) => p.onChange(setFailureHandler(doc, v ? id : null), 'on_failure')} />
      </Section>
      <TypeFields {...p} type={type} ids={ids} set={set} vars={vars} />
      {!['terminate', 'logic', 'human_approval'].includes(type) && (
        <Section title="Next">
          <NodeSelect label={type === 'loop' ? 'Exit (next_node, after the last iteration)' : type === 'parallel' ? 'Join (next_node, after the branches)' : 'Next node'} value={s(node.next_node)} ids={ids} self={id} onChange={(v) => set(['next_node'], v)} />
        </Section>
      )}
      {type === 'sequence' && <ErrorHandlers {...p} ids={ids} set={set} />}
      {type !== 'terminate' && (
        <Section title="SLA" open={isObject(node.sla)}>
          <NumberField label="Max duration (ms)" value={asObject(node.sla).max_duration_ms} onChange={(v) => set(['sla', 'max_duration_ms'], v)} />
          <SelectField label="On breach" value={s(asObject(node.sla).on_breach)} none="(default: warn)" options={['warn', 'fail', 'escalate']} onChange={(v) => set(['sla', 'on_breach'], v)} />
          <NodeSelect label="Escalation handler" value={s(asObject(node.sla).escalation_handler)} ids={ids} self={id} onChange={(v) => set(['sla', 'escalation_handler'], v)} />
        </Section>
      )}
      <Section title="Node JSON (every field)" open={false}>
        <JsonField
          label={`JSON of ${id}`}
          rows={12}
          value={node}
          onChange={(v) => {
            if (isObject(v)) p.onChange(setNode(doc, id, v), `${id}/json`);
          }}
          help="Fields without a form above are edited here; unknown fields are kept."
        />
      </Section>
    </div>
  );
}

interface TypeProps extends InspectorProps {
  id: string;
  node: JsonObject;
  type: string;
  ids: string[];
  vars: string[];
  set: (path: Slot, v: Json | undefined, keepEmpty?: boolean) => void;
}

function TypeFields(p: TypeProps) {
  const { node, ids, set, vars, id } = p;
  switch (p.type) {
    case 'sequence':
      return <Steps {...p} />;
    case 'logic': {
      const rules = list(node.rules);
      return (
        <Section title="Rules (first match wins)">
          {rules.map((r, i) => (
            <fieldset key={i} className="bitem">
              <legend>Rule {i + 1}</legend>
              <TemplateField label="Condition" value={s(asObject(r).condition)} variables={vars} placeholder="{{amount}} > 1000" onChange={(v) => set(['rules', i, 'condition'], v, true)} />
              <NodeSelect label="Then go to" value={s(asObject(r).next_node)} ids={ids} self={id} onChange={(v) => set(['rules', i, 'next_node'], v)} />
              <button type="button" className="ghost small" onClick={() => set(['rules', i], undefined)}>
                Remove rule {i + 1}
              </button>
            </fieldset>
          ))}
          <button type="button" className="small" onClick={() => set(['rules', rules.length], { condition: '', next_node: '' })}>
            Add rule
          </button>
          <NodeSelect label="Default (no rule matches)" value={s(node.default_next_node)} ids={ids} self={id} onChange={(v) => set(['default_next_node'], v)} />
        </Section>
      );
    }
    case 'loop':
      return (
        <Section title="Loop">
          <TextField label="Iterator (variable holding the list)" value={s(node.iterator)} onChange={(v) => set(['iterator'], v, true)} />
          <TextField label="Item variable" value={s(node.iterator_variable)} onChange={(v) => set(['iterator_variable'], v, true)} />
          <TextField label="Index variable" value={s(node.index_variable)} onChange={(v) => set(['index_variable'], v)} />
          <TextField label="Collect variable" value={s(node.collect_variable)} onChange={(v) => set(['collect_variable'], v)} />
          <NumberField label="Max iterations" value={node.max_iterations} onChange={(v) => set(['max_iterations'], v)} />
          <CheckField label="Continue on error" value={node.continue_on_error === true} onChange={(v) => set(['continue_on_error'], v || undefined)} />
          <NodeSelect label="Body (first node of each iteration)" value={s(node.body_node)} ids={ids} self={id} onChange={(v) => set(['body_node'], v)} />
        </Section>
      );
    case 'parallel': {
      const branches = list(node.branches);
      return (
        <Section title="Branches">
          {branches.map((b, i) => (
            <fieldset key={i} className="bitem">
              <legend>Branch {i + 1}</legend>
              <TextField label="Branch id" value={s(asObject(b).branch_id)} onChange={(v) => set(['branches', i, 'branch_id'], v, true)} />
              <NodeSelect label="Starts at" value={s(asObject(b).start_node)} ids={ids} self={id} onChange={(v) => set(['branches', i, 'start_node'], v)} />
              <button type="button" className="ghost small" onClick={() => set(['branches', i], undefined)}>
                Remove branch {i + 1}
              </button>
            </fieldset>
          ))}
          <button type="button" className="small" onClick={() => set(['branches', branches.length], { branch_id: `branch_${branches.length + 1}`, start_node: '' })}>
            Add branch
          </button>
          <SelectField label="Wait strategy" value={s(node.wait_strategy)} none="(default: all)" options={['all', 'any', 'first']} onChange={(v) => set(['wait_strategy'], v)} />
          <SelectField label="Branch failure" value={s(node.branch_failure)} none="(default)" options={['continue', 'stop', 'retry', 'fail']} onChange={(v) => set(['branch_failure'], v)} />
        </Section>
      );
    }
    case 'processing':
      return <Operations {...p} field="operations" title="Operations" />;
    case 'verification': {
      const checks = list(node.checks);
      return (
        <Section title="Checks">
          {checks.map((c, i) => (
            <fieldset key={i} className="bitem">
              <legend>Check {i + 1}</legend>
              <TextField label="Id" value={s(asObject(c).id)} onChange={(v) => set(['checks', i, 'id'], v)} />
              <TemplateField label="Condition" value={s(asObject(c).condition)} variables={vars} onChange={(v) => set(['checks', i, 'condition'], v, true)} />
              <SelectField label="On fail" value={s(asObject(c).on_fail)} none="(default)" options={['fail_workflow', 'warn', 'continue']} onChange={(v) => set(['checks', i, 'on_fail'], v)} />
              <TemplateField label="Message" value={s(asObject(c).message)} variables={vars} onChange={(v) => set(['checks', i, 'message'], v)} />
              <button type="button" className="ghost small" onClick={() => set(['checks', i], undefined)}>
                Remove check {i + 1}
              </button>
            </fieldset>
          ))}
          <button type="button" className="small" onClick={() => set(['checks', checks.length], { id: `check_${checks.length + 1}`, condition: '', on_fail: 'fail_workflow', message: '' })}>
            Add check
          </button>
        </Section>
      );
    }
    case 'llm_action':
      return (
        <Section title="LLM call">
          <TemplateField label="Prompt" multiline rows={5} value={s(node.prompt)} variables={vars} onChange={(v) => set(['prompt'], v, true)} />
          <TemplateField label="System prompt" multiline value={s(node.system_prompt)} variables={vars} onChange={(v) => set(['system_prompt'], v)} />
          <TextField label="Model" value={s(node.model)} placeholder="server default" onChange={(v) => set(['model'], v)} />
          <NumberField label="Temperature" value={node.temperature} onChange={(v) => set(['temperature'], v)} />
          <NumberField label="Max tokens" value={node.max_tokens} onChange={(v) => set(['max_tokens'], v)} />
          <CheckField label="JSON mode" value={node.json_mode === true} onChange={(v) => set(['json_mode'], v || undefined)} />
          <KeyValueField label="Outputs (variable → mapping: text, json:key, regex: …)" keyLabel="Variable" value={asObject(node.outputs)} variables={vars} onChange={(v) => set(['outputs'], v)} addLabel="Add output" />
          <CheckField label="Orchestration mode (the model picks the next node)" value={node.orchestration_mode === true} onChange={(v) => set(['orchestration_mode'], v || undefined)} />
          {node.orchestration_mode === true && <JsonField label="Branches (node ids the model may choose)" value={node.branches} rows={2} onChange={(v) => set(['branches'], v)} />}
          <JsonField label="Attachments (JSON list)" value={node.attachments} rows={2} onChange={(v) => set(['attachments'], v)} />
        </Section>
      );
    case 'terminate':
      return (
        <Section title="End">
          <SelectField label="Status" value={s(node.status)} options={['success', 'failed']} onChange={(v) => set(['status'], v)} />
          <KeyValueField label="Outputs" keyLabel="Output" value={asObject(node.outputs)} variables={vars} onChange={(v) => set(['outputs'], Object.keys(v).length ? v : undefined)} addLabel="Add output" />
          <Operations {...p} field="cleanup_actions" title="Cleanup actions" nested />
          <Operations {...p} field="error_actions" title="Error actions (status failed)" nested />
        </Section>
      );
    case 'subflow':
      return (
        <Section title="Subflow">
          <TextField label="Procedure id" value={s(node.procedure_id)} onChange={(v) => set(['procedure_id'], v, true)} />
          <TextField label="Version" value={s(node.version)} placeholder="latest" onChange={(v) => set(['version'], v)} />
          <KeyValueField label="Input mapping (child variable → value)" keyLabel="Child variable" value={asObject(node.input_mapping)} variables={vars} onChange={(v) => set(['input_mapping'], v)} />
          <KeyValueField label="Output mapping (parent variable → child variable)" keyLabel="Parent variable" value={asObject(node.output_mapping)} variables={vars} onChange={(v) => set(['output_mapping'], v)} />
          <SelectField label="On failure" value={s(node.on_failure)} none="(default: fail_parent)" options={['fail_parent', 'continue', 'retry']} onChange={(v) => set(['on_failure'], v)} />
          <CheckField label="Inherit context" value={node.inherit_context === true} onChange={(v) => set(['inherit_context'], v || undefined)} />
        </Section>
      );
    case 'human_approval':
      return (
        <Section title="Approval">
          <TemplateField label="Prompt" multiline value={s(node.prompt)} variables={vars} onChange={(v) => set(['prompt'], v, true)} />
          <SelectField label="Decision type" value={s(node.decision_type)} options={['approve_reject', 'select_option', 'provide_input']} onChange={(v) => set(['decision_type'], v)} />
          {node.decision_type === 'select_option' && <JsonField label="Options (JSON list)" value={node.options} rows={2} onChange={(v) => set(['options'], v)} />}
          <NumberField label="Timeout (ms)" value={node.timeout_ms} onChange={(v) => set(['timeout_ms'], v)} />
          <SelectField label="Timeout action" value={s(node.timeout_action)} none="(none)" options={['auto_approve', 'auto_reject', 'escalate']} onChange={(v) => set(['timeout_action'], v)} />
          <SelectField label="Approval level" value={s(node.approval_level)} none="(standard)" options={['standard', 'manager', 'executive']} onChange={(v) => set(['approval_level'], v)} />
          <TextField
            label="Approvers (role:NAME or user:NAME, comma separated)"
            value={list(node.approvers).map(String).join(', ')}
            onChange={(v) => set(['approvers'], v.trim() ? v.split(',').map((x) => x.trim()).filter(Boolean) : undefined)}
          />
          <TextField label="Escalation contact" value={s(node.escalation_contact)} onChange={(v) => set(['escalation_contact'], v)} />
          <JsonField label="Context data (JSON shown to the approver)" value={node.context_data} rows={3} onChange={(v) => set(['context_data'], v)} />
          <NodeSelect label="On approve" value={s(node.on_approve)} ids={ids} self={id} onChange={(v) => set(['on_approve'], v)} />
          <NodeSelect label="On reject" value={s(node.on_reject)} ids={ids} self={id} onChange={(v) => set(['on_reject'], v)} />
          <NodeSelect label="On timeout" value={s(node.on_timeout)} ids={ids} self={id} onChange={(v) => set(['on_timeout'], v)} />
        </Section>
      );
    case 'transform': {
      const ts = list(node.transformations);
      return (
        <Section title={`Transformations (${ts.length})`}>
          {ts.map((t, i) => {
            const o = asObject(t);
            return (
              <fieldset key={i} className="bitem">
                <legend>Transformation {i + 1}</legend>
                <div className="bform-row">
                  <SelectField label="Type" value={s(o.type)} options={TRANSFORM_TYPES} onChange={(v) => set(['transformations', i, 'type'], v)} />
                  <TextField label="Source variable" mono value={s(o.source_variable)} onChange={(v) => set(['transformations', i, 'source_variable'], v, true)} />
                </div>
                <TemplateField label="Expression" value={s(o.expression)} variables={vars} placeholder="item.amount > 100, {{item.name}}, sum:amount…" onChange={(v) => set(['transformations', i, 'expression'], v)} />
                <TextField label="Output variable" mono value={s(o.output_variable)} onChange={(v) => set(['transformations', i, 'output_variable'], v, true)} />
                <JsonField label="Params (JSON)" rows={2} value={o.params} onChange={(v) => set(['transformations', i, 'params'], v)} />
                <button type="button" className="ghost small" onClick={() => set(['transformations', i], undefined)}>
                  Remove transformation {i + 1}
                </button>
              </fieldset>
            );
          })}
          <button type="button" className="small" onClick={() => set(['transformations', ts.length], { type: 'filter', source_variable: '', expression: '', output_variable: '' })}>
            Add transformation
          </button>
        </Section>
      );
    }
    default:
      return null;
  }
}

const TRANSFORM_TYPES = ['filter', 'map', 'reduce', 'join', 'aggregate', 'pivot', 'sort', 'deduplicate', 'unique'];
const OPERATION_ACTIONS = [
  'set_variable', 'append_to_array', 'parse_excel_data', 'parse_json', 'parse_xml', 'parse_csv', 'calculate', 'format_string',
  'extract_regex', 'notify', 'log', 'encrypt', 'decrypt', 'hash', 'validate_schema', 'convert_type',
];

/** A list of processing operations (also a terminate node's cleanup and error actions): the action, then its
 * other fields as key/value rows. */
function Operations(p: TypeProps & { field: string; title: string; nested?: boolean }) {
  const { node, set, field } = p;
  const ops = list(node[field]);
  const body = (
    <>
      <datalist id={`bops-${p.id}-${field}`}>
        {OPERATION_ACTIONS.map((a) => (
          <option key={a} value={a} />
        ))}
      </datalist>
      {ops.map((raw, i) => {
        const op = asObject(raw);
        const rest: JsonObject = Object.fromEntries(Object.entries(op).filter(([k]) => k !== 'action'));
        return (
          <fieldset key={i} className="bitem">
            <legend>
              {p.nested ? p.title.replace(/ \(.*/, '').replace(/s$/, '') : 'Operation'} {i + 1}
            </legend>
            <label className="bfield">
              Action
              <input className="mono" list={`bops-${p.id}-${field}`} value={s(op.action)} onChange={(e) => set([field, i], { ...op, action: e.target.value })} />
            </label>
            <KeyValueField label="Fields" keyLabel="Field" value={rest} variables={p.vars} addLabel="Add field" onChange={(v) => set([field, i], { action: op.action ?? '', ...v })} />
            <button type="button" className="ghost small" onClick={() => set([field, i], undefined)}>
              Remove {p.nested ? 'action' : 'operation'} {i + 1}
            </button>
          </fieldset>
        );
      })}
      <button type="button" className="small" onClick={() => set([field, ops.length], { action: 'log', level: 'INFO', message: '' })}>
        Add {p.nested ? p.title.toLowerCase().replace(/ \(.*/, '').replace(/s$/, '') : 'operation'}
      </button>
    </>
  );
  if (p.nested)
    return (
      <fieldset className="bitem">
        <legend>{p.title}</legend>
        {body}
      </fieldset>
    );
  return <Section title={`${p.title} (${ops.length})`}>{body}</Section>;
}

const STEP_META = ['step_id', 'action', 'timeout_ms', 'wait_ms', 'wait_after_ms', 'retry_on_failure', 'retry_config', 'output_variable', 'screenshot_on_complete', 'idempotency_key', 'workflow_dispatch_mode', 'retry_policy'];

function Steps(p: TypeProps) {
  const { node, doc, id } = p;
  const steps = list(node.steps);
  const agent = s(node.agent).toLowerCase();
  const suggestions = p.actions.filter((a) => a.channel === 'internal' || a.channel === 'mcp' || (agent && a.channel.toLowerCase() === agent));
  return (
    <Section title={`Steps (${steps.length})`}>
      <datalist id={`bactions-${id}`}>
        {[...new Map(suggestions.map((a) => [a.name, a])).values()].map((a) => (
          <option key={a.name} value={a.name}>
            {a.channel}
          </option>
        ))}
      </datalist>
      {steps.map((raw, i) => {
        const step = asObject(raw);
        const setStep = (next: JsonObject) => p.onChange(updateStep(doc, id, i, next), `${id}/steps/${i}`);
        const field = (k: string, v: Json | undefined) => {
          const next = { ...step };
          if (v === undefined || v === '') delete next[k];
          else next[k] = v;
          setStep(next);
        };
        const params: JsonObject = Object.fromEntries(Object.entries(step).filter(([k]) => !STEP_META.includes(k)));
        return (
          <fieldset key={i} className="bitem bstep">
            <legend>
              Step {i + 1}
              {step.step_id ? <span className="mono"> · {s(step.step_id)}</span> : null}
            </legend>
            <div className="bform-row">
              <TextField label="Step id" mono value={s(step.step_id)} onChange={(v) => field('step_id', v)} />
              <label className="bfield">
                Action
                <input className="mono" list={`bactions-${id}`} value={s(step.action)} onChange={(e) => setStep({ ...step, action: e.target.value })} placeholder="log, set_variable, http_request…" />
              </label>
            </div>
            <KeyValueField
              label="Parameters"
              keyLabel="Parameter"
              value={params}
              variables={p.vars}
              addLabel="Add parameter"
              onChange={(np) => {
                const meta = Object.fromEntries(Object.entries(step).filter(([k]) => STEP_META.includes(k)));
                setStep({ ...meta, ...np });
              }}
            />
            <div className="bform-row">
              <TextField label="Output variable" mono value={s(step.output_variable)} onChange={(v) => field('output_variable', v)} />
              <NumberField label="Timeout (ms)" value={step.timeout_ms} onChange={(v) => field('timeout_ms', v)} />
            </div>
            <div className="bform-row">
              <CheckField label="Retry on failure" value={step.retry_on_failure === true} onChange={(v) => field('retry_on_failure', v || undefined)} />
              <TemplateField label="Idempotency key" value={s(step.idempotency_key)} variables={p.vars} onChange={(v) => field('idempotency_key', v)} />
            </div>
            <JsonField label="Retry config (JSON)" rows={2} value={step.retry_config} onChange={(v) => field('retry_config', v)} />
            <div className="bitem-actions">
              <button type="button" className="ghost small" disabled={i === 0} onClick={() => p.onChange(moveStep(doc, id, i, -1), 'move')}>
                Move up
              </button>
              <button type="button" className="ghost small" disabled={i === steps.length - 1} onClick={() => p.onChange(moveStep(doc, id, i, 1), 'move')}>
                Move down
              </button>
              <button type="button" className="ghost small danger" onClick={() => p.onChange(removeStep(doc, id, i), 'remove-step')}>
                Remove step {i + 1}
              </button>
            </div>
          </fieldset>
        );
      })}
      <button type="button" className="small" onClick={() => p.onChange(addStep(doc, id), 'add-step')}>
        Add step
      </button>
    </Section>
  );
}

function ErrorHandlers(p: InspectorProps & { id: string; node: JsonObject; ids: string[]; set: TypeProps['set'] }) {
  const handlers = list(p.node.error_handlers);
  return (
    <Section title={`Error handlers (${handlers.length})`} open={handlers.length > 0}>
      {handlers.map((h, i) => {
        const o = asObject(h);
        return (
          <fieldset key={i} className="bitem">
            <legend>Handler {i + 1}</legend>
            <TextField label="Error type (empty: any)" value={s(o.error_type)} onChange={(v) => p.set(['error_handlers', i, 'error_type'], v)} />
            <SelectField label="Action" value={s(o.action)} none="(none)" options={['retry', 'screenshot_and_fail', 'fail', 'ignore', 'escalate']} onChange={(v) => p.set(['error_handlers', i, 'action'], v)} />
            <NumberField label="Max retries" value={o.max_retries} onChange={(v) => p.set(['error_handlers', i, 'max_retries'], v)} />
            <SelectField label="Recovery strategy" value={s(o.recovery_strategy)} none="(none)" options={['retry_node', 'continue', 'stop', 'fallback_node']} onChange={(v) => p.set(['error_handlers', i, 'recovery_strategy'], v)} />
            <NodeSelect label="Fallback node" value={s(o.fallback_node)} ids={p.ids} self={p.id} onChange={(v) => p.set(['error_handlers', i, 'fallback_node'], v)} />
            <button type="button" className="ghost small" onClick={() => p.set(['error_handlers', i], undefined)}>
              Remove handler {i + 1}
            </button>
          </fieldset>
        );
      })}
      <button type="button" className="small" onClick={() => p.set(['error_handlers', handlers.length], { error_type: '', action: 'fail' })}>
        Add error handler
      </button>
    </Section>
  );
}

const VAR_TYPES = ['string', 'number', 'integer', 'boolean', 'array', 'object'];

function ProcedureForm(p: InspectorProps) {
  const { doc } = p;
  const set = (k: string, v: Json | undefined) => {
    const next = { ...doc };
    if (v === undefined || v === '') delete next[k];
    else next[k] = v;
    p.onChange(next, `proc/${k}`);
  };
  const vars = variablesOf(doc);
  const setVars = (next: typeof vars, group: string) => p.onChange(setVariables(doc, next), group);
  const ids = nodeIds(doc);
  return (
    <div className="bform">
      <div className="bform-head">
        <h2>Procedure</h2>
      </div>
      <p className="muted small">Select a node to edit it; these fields belong to the whole procedure.</p>
      <Section title="Procedure">
        <TextField label="Procedure id" mono value={s(doc.procedure_id)} onChange={(v) => p.onChange({ ...doc, procedure_id: v }, 'proc/procedure_id')} />
        <TextField label="Version (set when saving)" mono value={s(doc.version)} onChange={(v) => p.onChange({ ...doc, version: v }, 'proc/version')} />
        <TextField label="Display name" value={s(doc.name)} onChange={(v) => set('name', v)} />
        <label className="bfield">
          Description
          <textarea rows={3} value={s(doc.description)} onChange={(e) => set('description', e.target.value)} />
        </label>
        <NodeSelect label="Start node" value={startNode(doc) ?? ''} ids={ids} onChange={(v) => v && p.onSetStart(v)} />
        <NodeSelect label="On failure (global_config.on_failure)" value={failureHandler(doc) ?? ''} ids={ids} onChange={(v) => p.onChange(setFailureHandler(doc, v || null), 'on_failure')} />
      </Section>
      <Section title={`Variables (${vars.length})`}>
        {vars.map((v, i) => {
          const upd = (patch: Partial<(typeof vars)[number]>, group: string) => setVars(vars.map((x, j) => (j === i ? { ...x, ...patch } : x)), group);
          const spec = v.spec;
          const setSpec = (k: string, val: Json | undefined) => {
            const next = { ...spec };
            if (val === undefined || val === '') delete next[k];
            else next[k] = val;
            upd({ spec: next }, `var/${i}/${k}`);
          };
          return (
            <fieldset key={i} className="bitem">
              <legend>
                Variable <span className="mono">{v.name}</span>
              </legend>
              <div className="bform-row">
                <VarName name={v.name} taken={vars.filter((_, j) => j !== i).map((x) => x.name)} onRename={(n) => upd({ name: n }, `var/${i}/name`)} />
                <SelectField label="Type" value={s(spec.type)} none="(string)" options={VAR_TYPES} onChange={(t) => setSpec('type', t)} />
              </div>
              <CheckField label="Required" value={v.required} onChange={(r) => upd({ required: r }, `var/${i}/required`)} />
              <TextField label="Description" value={s(spec.description)} onChange={(d) => setSpec('description', d)} />
              <JsonField label="Default (JSON)" rows={1} value={spec.default} onChange={(d) => setSpec('default', d)} />
              <JsonField label="Validation (JSON: regex, min, max, allowed_values, sensitive)" rows={2} value={spec.validation} onChange={(d) => setSpec('validation', d)} />
              <button type="button" className="ghost small" onClick={() => setVars(vars.filter((_, j) => j !== i), 'var/remove')}>
                Remove variable {v.name}
              </button>
            </fieldset>
          );
        })}
        <button
          type="button"
          className="small"
          onClick={() => {
            let n = vars.length + 1;
            while (vars.some((x) => x.name === `var_${n}`)) n++;
            setVars([...vars, { name: `var_${n}`, required: true, spec: { type: 'string' } }], 'var/add');
          }}
        >
          Add variable
        </button>
      </Section>
      <Section title="Global configuration (JSON)" open={false}>
        <JsonField label="global_config" rows={8} value={doc.global_config} onChange={(v) => set('global_config', v)} />
      </Section>
      <Section title="Trigger (JSON)" open={false}>
        <JsonField label="trigger" rows={5} value={doc.trigger} onChange={(v) => set('trigger', v)} />
      </Section>
    </div>
  );
}

function VarName({ name, taken, onRename }: { name: string; taken: string[]; onRename: (n: string) => void }) {
  const [text, setText] = useState(name);
  const [err, setErr] = useState<string | null>(null);
  useEffect(() => setText(name), [name]);
  return (
    <label className="bfield">
      Name
      <input
        className="mono"
        value={text}
        aria-invalid={err !== null}
        onChange={(e) => setText(e.target.value)}
        onBlur={() => {
          const t = text.trim();
          if (t === name) return;
          if (!/^[A-Za-z_]\w*$/.test(t)) setErr('Letters, digits and _; not starting with a digit');
          else if (taken.includes(t)) setErr(`${t} is declared already`);
          else {
            setErr(null);
            onRename(t);
            return;
          }
          setText(name);
        }}
      />
      {err && <span className="field-error">{err}</span>}
    </label>
  );
}
