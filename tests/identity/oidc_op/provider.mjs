// A real OpenID Provider for the test suite: panva's certified `oidc-provider` (v8), configured
// from the environment by tests/identity/real_op.py. Only the login screen is replaced: the test
// names the account in `login_hint` (no hint: a page asking to log in, no code); consent is implied
// for this first-party client. `/__test/jwks` switches the JWKS answer to simulate broken providers.
import { createServer } from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const env = process.env;
const port = Number(env.OP_PORT);
const issuer = `http://127.0.0.1:${port}`;
const users = JSON.parse(env.OP_USERS || '{}');
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const key = { ...privateKey.export({ format: 'jwk' }), kid: env.OP_KID || 'k1', alg: 'ES256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: env.OP_CLIENT_ID,
    client_secret: env.OP_CLIENT_SECRET,
    redirect_uris: [env.OP_REDIRECT_URI],
    post_logout_redirect_uris: [env.OP_POST_LOGOUT_URI],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    id_token_signed_response_alg: 'ES256',
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [key] },
  // true (the default, what the specification asks): with an access token issued, the scope's
  // claims are only in UserInfo; false: they are also in the ID token.
  conformIdTokenClaims: env.OP_CONFORM !== '0',
  claims: {
    openid: ['sub'],
    profile: ['name'],
    phone: ['phone_number', 'phone_number_verified'],
    idcard: ['id_number', 'id_type', 'real_name_verified'],
  },
  scopes: ['openid', 'profile', 'phone', 'idcard'],
  pkce: { required: () => true, methods: ['S256'] },
  features: { devInteractions: { enabled: false }, rpInitiatedLogout: { enabled: true } },
  cookies: { keys: ['test-cookie-key-0123456789abcdef'] },
  ttl: { AccessToken: 300, AuthorizationCode: 60, IdToken: 300, Interaction: 300, Session: 3600, Grant: 3600 },
  async findAccount(ctx, sub) {
    const user = users[sub];
    if (!user) return undefined;
    return { accountId: sub, async claims() { return { sub, ...user }; } };
  },
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope(ctx.oidc.requestParamScopes ? [...ctx.oidc.requestParamScopes].join(' ') : 'openid');
    await grant.save();
    return grant;
  },
});
provider.proxy = false;

let jwksMode = 'ok';
const callback = provider.callback();

createServer(async (req, res) => {
  try {
    const url = new URL(req.url, issuer);
    if (url.pathname === '/__test/jwks') {
      jwksMode = url.searchParams.get('mode') || 'ok';
      res.writeHead(204).end();
      return;
    }
    if (url.pathname === '/jwks' && jwksMode !== 'ok') {
      if (jwksMode === 'reset') { req.socket.destroy(); return; }
      if (jwksMode === 'html') { res.writeHead(200, { 'content-type': 'text/html' }).end('<html>maintenance</html>'); return; }
      res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"temporarily_unavailable"}');
      return;
    }
    if (url.pathname.startsWith('/interaction/')) {
      const details = await provider.interactionDetails(req, res);
      const hint = details.params.login_hint;
      if (!hint || !users[hint]) {
        res.writeHead(200, { 'content-type': 'text/html' }).end('<html>please log in</html>');
        return;
      }
      await provider.interactionFinished(req, res, { login: { accountId: hint } }, { mergeWithLastSubmission: false });
      return;
    }
    callback(req, res);
  } catch (err) {
    res.writeHead(500).end(String(err));
  }
}).listen(port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});
