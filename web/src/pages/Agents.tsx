// Placeholder until the screen lands (issue 20).
import { PageHead } from '../components/Bits';

export default function Agents() {
  return <PageHead title="Agents" />;
}
