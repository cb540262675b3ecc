import { Link } from 'react-router';
import { PageHead } from '../components/Bits';

export default function NotFound() {
  return (
    <>
      <PageHead title="Page not found" />
      <p>
        There is no page here. <Link to="/">Back to the dashboard</Link>.
      </p>
    </>
  );
}
