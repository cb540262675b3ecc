// The shape of a CKP document, as ckp's compiler reads it (crates/ckp-core/src/model): which properties an object
// has at each place, what their values are (enums, node references, actions). The editor's completion reads it; it
// is a guide for typing, not a validator (the server's compiler judges, through /api/procedures/validate).
import { NODE_TYPES } from '../builder/model';

export type ValueType = 'string' | 'number' | 'boolean' | 'object' | 'array' | 'any';

export interface Field {
  doc: string;
  type: ValueType;
  /** The values a string field takes. */
  values?: readonly string[];
  /** The value is a node id, or a step's action. */
  ref?: 'node' | 'action';
  /** An object's known properties. */
  fields?: Record<string, Field>;
  /** An object whose keys are free (node ids, variable names): the shape of each value. */
  map?: Field | 'node';
  /** An array's items. */
  items?: Field;
}

const s = (doc: string, values?: readonly string[]): Field => ({ doc, type: 'string', values });
const n = (doc: string): Field => ({ doc, type: 'number' });
const b = (doc: string): Field => ({ doc, type: 'boolean' });
const any = (doc: string): Field => ({ doc, type: 'any' });
const node = (doc: string): Field => ({ doc, type: 'string', ref: 'node' });
const o = (doc: string, fields?: Record<string, Field>): Field => ({ doc, type: 'object', fields });
const a = (doc: string, items?: Field): Field => ({ doc, type: 'array', items });
const strings = (doc: string) => a(doc, s('text'));


export const OPERATIONS = [
  'set_variable',
  'append_to_array',
  'parse_excel_data',
  'parse_json',
  'parse_xml',
  'parse_csv',
  'calculate',
  'format_string',
  'extract_regex',
  'notify',
  'log',
  'encrypt',
  'decrypt',
  'hash',
  'validate_schema',
  'convert_type',
] as const;

const AGENTS = ['MasterAgent', 'WEB', 'DESKTOP', 'LLMAgent', 'EMAIL', 'API', 'DATABASE'] as const;
const LEVELS = ['DEBUG', 'INFO', 'WARNING', 'ERROR'] as const;

const retryConfig = o('Retry settings', {
  max_retries: n('Retries after the first attempt'),
  retry_delay_ms: n('Delay between retries'),
  delay_ms: n('Alias of retry_delay_ms'),
  backoff_multiplier: n('Delay multiplier'),
});

const retryPolicy = o('Delay strategy', {
  strategy: s('How delays grow', ['fixed', 'exponential_backoff', 'fibonacci', 'linear']),
  base_delay_ms: n('First delay'),
  max_delay_ms: n('Cap'),
  multiplier: n('Growth factor'),
  jitter: b('Randomise delays'),
});

export const STEP_FIELDS: Record<string, Field> = {
  step_id: s('Step id (keys the result cache, test_data_overrides)'),
  action: { doc: 'The action (an internal one or an agent capability)', type: 'string', ref: 'action' },
  timeout_ms: n('Time limit of one attempt'),
  wait_ms: n('Wait before the step'),
  wait_after_ms: n('Wait after the step'),
  retry_on_failure: b('Retry when it fails'),
  retry_config: retryConfig,
  retry_policy: retryPolicy,
  output_variable: s('Variable that receives the result'),
  screenshot_on_complete: b('Screenshot after the step'),
  idempotency_key: s('Key for safe retries (a template)'),
  workflow_dispatch_mode: s('async | sync', ['async', 'sync']),
  // Parameters: any other key is sent to the executor. The common ones:
  target: s('Parameter: target (selector, window)'),
  value: any('Parameter: value'),
  url: s('Parameter: URL'),
  method: s('Parameter: HTTP method', ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']),
  headers: o('Parameter: HTTP headers'),
  body: any('Parameter: request body'),
  query: s('Parameter: query'),
  parameters: o('Parameter: query parameters'),
  text: s('Parameter: text'),
  message: s('Parameter: message (log)'),
  level: s('Parameter: log level', LEVELS),
  source: any('Parameter: input (often {{var}})'),
  file_path: s('Parameter: file path'),
};
const step = o('A step', STEP_FIELDS);

const operation = o('An operation', {
  action: s('The operation', OPERATIONS),
  variable: s('Target variable (set_variable)'),
  value: any('Value'),
  array: s('Target array variable (append_to_array)'),
  expression: s('Expression (calculate, format_string)'),
  source: any('Input (often {{var}})'),
  pattern: s('Pattern (extract_regex)'),
  output_variable: s('Variable that receives the result'),
  channel: s('Notification channel'),
  recipients: any('Recipients (a list or {{var}})'),
  subject: s('Notification subject'),
  message: s('Message (notify, log)'),
  level: s('Log level', LEVELS),
  schema: o('JSON Schema (validate_schema)'),
  algorithm: s('Algorithm (hash, encrypt)'),
  key_reference: s('Secret holding the key'),
  target_type: s('Target type (convert_type)'),
});

const errorHandler = o('An error handler', {
  error_type: s('Error kind it handles (empty: all)'),
  action: s('What to do', ['retry', 'screenshot_and_fail', 'fail', 'ignore', 'escalate']),
  max_retries: n('Retries granted'),
  delay_ms: n('Delay between retries'),
  retry_policy: retryPolicy,
  trigger: o('Finer matching', {
    error_text_contains: s('Substring of the error message'),
    error_code: any('Error code'),
    http_status_codes: a('HTTP statuses', n('status')),
  }),
  recovery_strategy: s('After the handler', ['retry_node', 'continue', 'stop', 'fallback_node']),
  recovery_steps: a('Steps run on a match', step),
  fallback_node: node('Node to go to'),
  notify_on_error: b('Emit step_error_notification'),
  error_metadata: o('Free data'),
});

/** Fields every node has. */
export const COMMON_FIELDS: Record<string, Field> = {
  type: s('Node type (default sequence)', NODE_TYPES),
  agent: s('Channel its steps go to', AGENTS),
  description: s('Human name (node_name in events)'),
  inputs: o('Declared inputs (documentation)'),
  next_node: node('Default successor'),
  is_checkpoint: b('Save a checkpoint after this node'),
  sla: o('Duration limit', {
    max_duration_ms: n('Limit'),
    on_breach: s('On a breach', ['warn', 'fail', 'escalate']),
    escalation_handler: node('Node to go to on escalate'),
  }),
  telemetry: o('Telemetry switches', {
    track_duration: b('Add duration_ms to step_completed'),
    track_retries: b('Add retry_count to step_completed'),
    custom_metrics: any('Metric names or {name, value} objects'),
    trace_id: s('Trace id'),
    span_id: s('Span id'),
  }),
  idempotency_key: s('Node-level idempotency key'),
  dispatch_mode: s('async | sync for workflow capabilities', ['async', 'sync']),
};

/** The fields of each node type's payload. */
export const PAYLOAD_FIELDS: Record<string, Record<string, Field>> = {
  sequence: {
    steps: a('Steps run in order', step),
    validations: a(
      'Checks after the steps',
      o('A validation', {
        id: s('Check name'),
        check: s('Kind of check', ['screen_text_contains', 'element_exists', 'value_in_range', 'custom']),
        expected_values: a('Values the check accepts'),
        condition: s('Condition (custom)'),
        on_failure: s('On failure', ['throw_exception', 'retry_node', 'fail_workflow']),
        message: s('Message when it fails'),
      }),
    ),
    error_handlers: a('Handlers for step errors', errorHandler),
  },
  logic: {
    rules: a('Rules in order; the first that holds routes', o('A rule', { condition: s('The condition'), next_node: node('Where to go when it holds') })),
    default_next_node: node('Successor when no rule holds'),
  },
  loop: {
    iterator: s('Variable holding the list'),
    iterator_variable: s('Variable that receives each element'),
    index_variable: s('Variable that receives each index'),
    body_node: node('First node of the body'),
    collect_variable: s('Variable collecting successful iterations'),
    max_iterations: n('Stop after this many iterations'),
    continue_on_error: b('Skip a failing iteration'),
  },
  parallel: {
    branches: a('Branches run concurrently', o('A branch', { branch_id: s('Branch name'), start_node: node('First node of the branch') })),
    wait_strategy: s('When the join proceeds', ['all', 'any', 'first']),
    branch_failure: s('When a branch fails', ['continue', 'stop', 'retry', 'fail']),
  },
  processing: { operations: a('Operations in order', operation) },
  verification: {
    checks: a(
      'Conditions that must hold',
      o('A check', {
        id: s('Check name'),
        condition: s('The condition'),
        on_fail: s('When it does not hold', ['fail_workflow', 'warn', 'continue']),
        message: s('Message'),
      }),
    ),
  },
  llm_action: {
    prompt: s('The user prompt (a template)'),
    system_prompt: s('The system prompt (a template)'),
    model: s('Model name'),
    temperature: n('Sampling temperature'),
    max_tokens: n('Completion token limit'),
    json_mode: b('Ask for a JSON object'),
    attachments: a(
      'Files and data sent with the prompt',
      o('An attachment', { type: s('Kind', ['image', 'csv', 'text', 'json']), source: s('File path or {{var}}'), description: s('Description') }),
    ),
    retry: o('Retries of failed calls', {
      max_retries: n('Retries'),
      delay_ms: n('Delay before the first retry'),
      retry_delay_ms: n('Alias of delay_ms'),
      backoff_multiplier: n('Delay multiplier'),
    }),
    outputs: o('variable → mapping (text, json:key, json_extract: path, regex: pattern)'),
    orchestration_mode: b('The model chooses the next node among branches'),
    branches: a('Node ids the model may choose', node('A node')),
  },
  terminate: {
    status: s('How the run ends', ['success', 'failed']),
    cleanup_actions: a('Operations on the way out', operation),
    error_actions: a('Operations when the status is failed', operation),
    outputs: o('Run outputs'),
    final_audit_log: any('Audit record'),
  },
  subflow: {
    procedure_id: s('The child procedure'),
    version: s('Its version (absent: the latest)'),
    input_mapping: o('child variable → parent variable or template'),
    output_mapping: o('parent variable → child variable'),
    on_failure: s('When the child fails', ['fail_parent', 'continue', 'retry']),
    inherit_context: b('Pass all parent variables to the child'),
  },
  human_approval: {
    prompt: s('The question'),
    decision_type: s('Kind of decision', ['approve_reject', 'select_option', 'provide_input']),
    options: a('Choices (select_option)'),
    timeout_ms: n('Expiry'),
    timeout_action: s('On expiry', ['auto_approve', 'auto_reject', 'escalate']),
    escalation_contact: s('Who is told on escalation'),
    context_data: any('Data shown to the approver'),
    approval_level: s('Level', ['standard', 'manager', 'executive']),
    approvers: a('Who may decide: role:<role> or user:<name>', s('approver')),
    on_approve: node('Successor on approval'),
    on_reject: node('Successor on rejection'),
    on_timeout: node('Successor on expiry'),
  },
  transform: {
    transformations: a(
      'Transformations in order',
      o('A transformation', {
        type: s('Kind', ['filter', 'map', 'reduce', 'join', 'aggregate', 'pivot', 'sort', 'deduplicate', 'unique']),
        source_variable: s('Variable holding the input list'),
        expression: s('Condition, template, field or key'),
        output_variable: s('Variable that receives the result'),
        params: o('Extra parameters'),
      }),
    ),
  },
};

/** The fields of a node of this type (common ones first). */
export function nodeFields(type: string | undefined): Record<string, Field> {
  return { ...COMMON_FIELDS, ...(PAYLOAD_FIELDS[type ?? 'sequence'] ?? {}) };
}

const variable = o('A variable', {
  type: s('Its type', ['string', 'number', 'integer', 'boolean', 'array', 'object']),
  description: s('What it is'),
  default: any('Default value'),
  origin: s('Where it comes from', ['user_strict', 'user_lazy', 'system_captured']),
  sensitive: b('Redacted in views and logs'),
  validation: o('Checks at run creation', {
    regex: s('Pattern the whole value matches'),
    min: n('Minimum (value or length)'),
    max: n('Maximum (value or length)'),
    allowed_values: a('The values allowed'),
    sensitive: b('Redacted in views and logs'),
  }),
});

export const ROOT: Field = o('A CKP document', {
  procedure_id: s('Unique id'),
  version: s('Version (semver)'),
  name: s('Display name'),
  status: s('Lifecycle status', ['draft', 'active', 'deprecated', 'archived']),
  effective_date: s('YYYY-MM-DD'),
  description: s('What it does'),
  trigger: o('How runs start', {
    type: s('Trigger type', ['manual', 'scheduled', 'webhook', 'event', 'file_watch']),
    schedule: s('Cron expression (5 fields, UTC)'),
    timezone: s('Time zone of the schedule'),
    webhook_config: o('Webhook', { endpoint: s('Endpoint'), authentication: o('Authentication'), allowed_sources: strings('Allowed sources') }),
    webhook_secret: s('Environment variable holding the webhook secret'),
    event_config: o('Event', { event_source: s('Source'), event_filter: o('Filter'), event_type: strings('Event types') }),
    event_source: s('Event source'),
    file_watch_config: o('File watch', { path: s('Directory'), pattern: s('Glob'), event_types: a('Events', s('event', ['created', 'modified', 'deleted'])) }),
  }),
  retrieval_metadata: o('Search metadata', {
    primary_intents: strings('Intents it serves'),
    negative_intents: strings('Intents it does not serve'),
    business_domain: s('Domain', ['finance', 'hr', 'it', 'ops']),
    applicability: o('Where it applies', {
      application_names: strings('Applications'),
      account_types: strings('Account types'),
      channel: strings('Channels'),
    }),
    keywords: strings('Keywords'),
  }),
  global_config: o('Run-wide settings', {
    screenshot_on_fail: b('Screenshot when a step fails'),
    max_retries: n('Retries of a failed step'),
    retry_delay_ms: n('Delay between retries'),
    backoff_multiplier: n('Delay multiplier'),
    retry_policy: retryConfig,
    timeout_ms: n('Step time limit'),
    max_node_entries: n('Node entries before the run is stopped (cycles)'),
    on_failure: node('Node to go to when a node fails'),
    logging_level: s('Log level', LEVELS),
    telemetry_enabled: b('Telemetry'),
    checkpoint_strategy: s('When checkpoints are saved', ['every_node', 'critical_nodes_only', 'disabled']),
    checkpoint_storage: s('Where', ['local', 'database', 'cloud']),
    resume_on_failure: b('Resume from the last checkpoint'),
    checkpoint_retention_days: n('Retention'),
    execution_mode: s('Mode', ['production', 'dry_run', 'validation_only']),
    mock_external_calls: b('Mock every external call'),
    test_data_overrides: o('step id → result used instead of calling it'),
    rate_limiting: o('Rate limits', {
      enabled: b('On'),
      max_requests_per_minute: n('Requests per minute'),
      max_concurrent_operations: n('Concurrent operations'),
      max_concurrent: n('Alias of max_concurrent_operations'),
    }),
    secrets_config: o('Secrets', {
      provider: s('Provider', ['azure_keyvault', 'aws_secrets', 'hashicorp_vault', 'env_vars']),
      vault_url: s('Vault URL'),
      secret_references: o('alias → provider key'),
    }),
    audit_config: o('Audit', {
      enabled: b('On'),
      audit_level: s('Level', ['minimal', 'standard', 'detailed']),
      storage_location: s('Where'),
      retention_days: n('Retention'),
      include_sensitive_data: b('Keep sensitive values'),
      redacted_fields: strings('Fields redacted'),
    }),
    workflow_dispatch_mode: s('async | sync', ['async', 'sync']),
    max_cost_usd: n('Cost budget of a run'),
    max_cost_per_llm_call_usd: n('Cost budget of one LLM call'),
    min_llm_quality: n('Minimum model quality'),
    mcp_servers: o('MCP servers'),
  }),
  variables_schema: o('Input variables', {
    required: { doc: 'Variables a run must be given', type: 'object', map: variable },
    optional: { doc: 'Variables with defaults or captured later', type: 'object', map: variable },
  }),
  workflow_graph: o('The graph', {
    start_node: node('First node'),
    nodes: { doc: 'node id → node', type: 'object', map: 'node' },
  }),
  provenance: o('Where it comes from', {
    compiled_on: s('ISO timestamp'),
    compiler_agent_version: s('Compiler version'),
    human_reviewer: s('Reviewer'),
    sources: a('Sources', o('A source', { doc_id: s('Document'), version: s('Its version'), section_ref: s('Section') })),
  }),
});

/**
 * The field at a path of the document (object keys and array indexes), or null where the shape is free or
 * unknown. `nodeType(id)` answers a node's type (the node's fields depend on it).
 */
export function fieldAt(path: readonly (string | number)[], nodeType: (id: string) => string | undefined): Field | null {
  let f: Field = ROOT;
  for (let i = 0; i < path.length; i++) {
    const t = path[i];
    let next: Field | null = null;
    if (typeof t === 'number') next = f.items ?? null;
    else if (f.fields && t in f.fields) next = f.fields[t];
    else if (f.map === 'node') next = o(`Node ${t}`, nodeFields(nodeType(t)));
    else if (f.map) next = f.map;
    if (!next) return null;
    f = next;
  }
  return f;
}
