// The runs feature's public face: what the runs pages use.
export { BulkActions } from './BulkActions';
export { CleanupDialog } from './CleanupDialog';
export { isTerminal, RANGES, RUN_STATUSES, useProcedureChoices, useProjectChoices, useRuns, type Run, type RunFilters } from './api';
