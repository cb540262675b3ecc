// Test runs from the editor: the panel that starts one and follows it, and the per-node overlay of a run.
export { TestRunPanel, type TestRunPanelProps } from './TestRunPanel';
export { useRunOverlay } from './useRunOverlay';
export { overlayFromEvents, type NodeOverlay } from './overlay';
export { startTestRun, type TestRunRequest } from './api';
