// The approvals feature's public face.
export {
  countdown,
  decide,
  flagsOf,
  optionsOf,
  useAllApprovals,
  useApproval,
  useApprovalStream,
  usePendingApprovals,
  useRecordDecision,
  type Approval,
} from './api';
export { Expiry, FlagBadges, InlineDecision, ProcedureLink } from './parts';
