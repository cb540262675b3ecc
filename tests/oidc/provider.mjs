// An OpenID provider for ckp's single sign-on tests: oidc-provider (a certified implementation, pinned in
// package.json) on 127.0.0.1, with one confidential client and development interactions (a login form that
// accepts any login, then a consent form). Every account's claims include groups, email, preferred_username and
// name; a login starting with "plain" has groups ["staff"] instead of ["ckp-admins"].
//
//   node provider.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI [ID_TOKEN_ALG]
//
// ID_TOKEN_ALG is RS256 (the default) or ES256. Prints "listening" on standard output once it accepts connections.
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const [port, clientId, clientSecret, redirectUri, alg = 'RS256'] = process.argv.slice(2);
if (!port || !clientId || !clientSecret || !redirectUri) {
  console.error('usage: node provider.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI [ID_TOKEN_ALG]');
  process.exit(2);
}

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });

const configuration = {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: alg,
  }],
  jwks: { keys: [{ ...rsa, kid: 'rsa-1', use: 'sig', alg: 'RS256' }, { ...ec, kid: 'ec-1', use: 'sig', alg: 'ES256' }] },
  cookies: { keys: ['ckp-test-provider-cookie-key'] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username', 'groups'],
  },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: `${id}@example.com`,
          email_verified: true,
          preferred_username: id,
          name: `Test ${id}`,
          groups: id.startsWith('plain') ? ['staff'] : ['ckp-admins'],
        };
      },
    };
  },
};

const provider = new Provider(`http://127.0.0.1:${port}`, configuration);
provider.listen(Number(port), '127.0.0.1', () => console.log('listening'));
