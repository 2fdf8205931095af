// A real, generic OpenID Connect provider (panva's oidc-provider) for Tessera's
// conformance tests. Listens on 127.0.0.1 only.
//
//   node server.mjs --port 0 [--access-token-ttl 3600] [--id-token-ttl 3600]
//                   [--refresh-token-ttl 1209600] [--device-code-ttl 600]
//                   [--session-ttl 1209600] [--ignore-stdin]
//                   [--tls-cert cert.pem --tls-key key.pem] [--issuer-path /tenant]
//
// --tls-cert/--tls-key: serve https with this certificate chain and key (PEM); the
// issuer is then https://127.0.0.1:PORT. MSAL Python accepts only https authorities.
// --issuer-path: the issuer gets this path (https://127.0.0.1:PORT/tenant) and every
// endpoint lives under it. MSAL Python's oidc_authority needs a path segment (it takes
// the first one as the tenant, and the token endpoint's first one as the cache realm).
//
// Every TTL flag can also be given as an environment variable:
//   OIDC_ACCESS_TOKEN_TTL, OIDC_ID_TOKEN_TTL, OIDC_REFRESH_TOKEN_TTL,
//   OIDC_DEVICE_CODE_TTL, OIDC_SESSION_TTL (flags win).
//
// When ready it prints exactly one line on stdout: {"issuer":"http://127.0.0.1:PORT"}
// Everything else (including oidc-provider's own notices) goes to stderr.
// It exits when its stdin closes (unless --ignore-stdin) and on SIGTERM/SIGINT.
//
// Clients (public, token_endpoint_auth_method "none", application_type "native"):
//   tessera-jwt     access tokens for urn:tessera:api are JWTs
//   tessera-opaque  access tokens for urn:tessera:api are opaque
// Both: grant types authorization_code, refresh_token and device_code; PKCE (S256)
// required; redirect URIs http://localhost/callback plus the loopback URIs
// http://127.0.0.1[/] and http://localhost[/] with ANY port (RFC 8252 §7.3,
// oidc-provider applies port-agnostic matching to loopback URIs of native clients).

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { parseArgs } from 'node:util';

// oidc-provider prints its NOTICEs with console.info (stdout); stdout is reserved
// for the single ready line, so route every console output to stderr.
console.log = (...args) => console.error(...args);
console.info = (...args) => console.error(...args);

// Fresh signing key per process (no development keystore). Made before oidc-provider is
// imported: made after it, about one start in twenty (Node 20, OpenSSL 3) hung for good,
// its main thread waiting on a lock inside privateKey.export() or randomBytes(), and the
// ready line never came. Made first, 300 starts in a row were fine.
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = {
  ...privateKey.export({ format: 'jwk' }),
  kid: `tessera-test-${crypto.randomBytes(6).toString('hex')}`,
  use: 'sig',
  alg: 'RS256',
};

const { default: Provider, errors } = await import('oidc-provider');

const API_RESOURCE = 'urn:tessera:api';
const API_SCOPES = ['api:read', 'api:write'];
const JWT_CLIENT = 'tessera-jwt';
const OPAQUE_CLIENT = 'tessera-opaque';

function fail(message) {
  console.error(`oidc-provider server: ${message}`);
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      'access-token-ttl': { type: 'string' },
      'id-token-ttl': { type: 'string' },
      'refresh-token-ttl': { type: 'string' },
      'device-code-ttl': { type: 'string' },
      'session-ttl': { type: 'string' },
      'ignore-stdin': { type: 'boolean', default: false },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'issuer-path': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  }).values;
} catch (err) {
  fail(`${err.message} (see the header of server.mjs for usage)`);
}

if (args.help) {
  console.error('usage: node server.mjs --port 0 [--access-token-ttl S] [--id-token-ttl S] '
    + '[--refresh-token-ttl S] [--device-code-ttl S] [--session-ttl S] [--ignore-stdin] '
    + '[--tls-cert FILE --tls-key FILE] [--issuer-path /PATH]');
  process.exit(0);
}

function seconds(flag, envName, fallback) {
  const raw = args[flag] ?? process.env[envName];
  if (raw === undefined || raw === '') return fallback;
  if (!/^[0-9]+$/.test(raw) || Number(raw) < 1) {
    fail(`--${flag} / ${envName} must be a positive whole number of seconds, got ${JSON.stringify(raw)}`);
  }
  return Number(raw);
}

if (!/^[0-9]+$/.test(args.port) || Number(args.port) > 65535) {
  fail(`--port must be a number between 0 and 65535, got ${JSON.stringify(args.port)}`);
}
const port = Number(args.port);

if (Boolean(args['tls-cert']) !== Boolean(args['tls-key'])) {
  fail('--tls-cert and --tls-key go together');
}
let tls;
if (args['tls-cert']) {
  try {
    tls = { cert: fs.readFileSync(args['tls-cert']), key: fs.readFileSync(args['tls-key']) };
  } catch (err) {
    fail(`cannot read the TLS certificate or key: ${err.message}`);
  }
}

const issuerPath = (args['issuer-path'] ?? '').replace(/\/+$/, '');
if (issuerPath !== '' && !/^(\/[A-Za-z0-9._~-]+)+$/.test(issuerPath)) {
  fail(`--issuer-path must look like /segment[/segment...], got ${JSON.stringify(args['issuer-path'])}`);
}

const ttl = {
  accessToken: seconds('access-token-ttl', 'OIDC_ACCESS_TOKEN_TTL', 3600),
  idToken: seconds('id-token-ttl', 'OIDC_ID_TOKEN_TTL', 3600),
  refreshToken: seconds('refresh-token-ttl', 'OIDC_REFRESH_TOKEN_TTL', 14 * 24 * 3600),
  deviceCode: seconds('device-code-ttl', 'OIDC_DEVICE_CODE_TTL', 600),
  session: seconds('session-ttl', 'OIDC_SESSION_TTL', 14 * 24 * 3600),
};


// Loopback redirect URIs: oidc-provider matches a requested http loopback URI of
// a native client against the registered ones with the port ignored, so
// "http://127.0.0.1:53124/" matches "http://127.0.0.1/" and
// "http://localhost:8400" matches "http://localhost".
const REDIRECT_URIS = [
  'http://localhost/callback',
  'http://localhost',
  'http://localhost/',
  'http://127.0.0.1',
  'http://127.0.0.1/',
  'http://127.0.0.1/callback',
];

function client(clientId, clientName) {
  return {
    client_id: clientId,
    client_name: clientName,
    application_type: 'native',
    token_endpoint_auth_method: 'none',
    grant_types: [
      'authorization_code',
      'refresh_token',
      'urn:ietf:params:oauth:grant-type:device_code',
    ],
    response_types: ['code'],
    redirect_uris: REDIRECT_URIS,
    post_logout_redirect_uris: REDIRECT_URIS,
  };
}

function requestsApiScope(scope) {
  return typeof scope === 'string' && scope.split(' ').some((s) => API_SCOPES.includes(s));
}

const configuration = {
  clients: [
    client(JWT_CLIENT, 'Tessera (JWT access tokens)'),
    client(OPAQUE_CLIENT, 'Tessera (opaque access tokens)'),
  ],
  jwks: { keys: [signingJwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
  },
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  // Desktop clients read name/preferred_username from the ID token (as MSAL does).
  conformIdTokenClaims: false,
  // The account id is exactly the login typed into the dev login form.
  async findAccount(_ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        const local = sub.replace(/[^A-Za-z0-9._-]/g, '_') || 'user';
        return {
          sub,
          name: `Test User ${sub}`,
          preferred_username: sub,
          email: sub.includes('@') ? sub : `${local}@example.test`,
          email_verified: true,
        };
      },
    };
  },
  responseTypes: ['code'],
  pkce: { required: () => true },
  issueRefreshToken(_ctx, client, code) {
    return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
  },
  rotateRefreshToken: true,
  ttl: {
    AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL || ttl.accessToken,
    AuthorizationCode: 60,
    DeviceCode: ttl.deviceCode,
    IdToken: ttl.idToken,
    RefreshToken: ttl.refreshToken,
    Session: ttl.session,
    Grant: Math.max(ttl.session, ttl.refreshToken),
    Interaction: 3600,
  },
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    userinfo: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // No `resource` parameter: a request for an api:* scope means the Tessera API.
      async defaultResource(ctx, _client, oneOf) {
        if (oneOf) return oneOf;
        if (requestsApiScope(ctx.oidc.params?.scope)) return API_RESOURCE;
        return undefined;
      },
      // At the token endpoint an omitted `resource` means the one that was granted.
      async useGrantedResource() {
        return true;
      },
      async getResourceServerInfo(_ctx, resourceIndicator, client) {
        if (resourceIndicator !== API_RESOURCE) {
          throw new errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
        }
        return {
          scope: API_SCOPES.join(' '),
          audience: API_RESOURCE,
          accessTokenTTL: ttl.accessToken,
          accessTokenFormat: client.clientId === JWT_CLIENT ? 'jwt' : 'opaque',
          ...(client.clientId === JWT_CLIENT ? { jwt: { sign: { alg: 'RS256' } } } : {}),
        };
      },
    },
  },
};

let server;
try {
  server = tls ? https.createServer(tls) : http.createServer();
} catch (err) {
  fail(`cannot serve https with the given certificate and key: ${err.message}`);
}
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, '127.0.0.1', resolve);
});
const issuer = `${tls ? 'https' : 'http'}://127.0.0.1:${server.address().port}${issuerPath}`;

let provider;
try {
  provider = new Provider(issuer, configuration);
} catch (err) {
  fail(`invalid configuration: ${err.message}`);
}

// Mounted under the issuer path (the request handler below strips it): oidc-provider
// builds every URL it hands out (endpoints, login and consent pages) with ctx.mountPath.
if (issuerPath) {
  provider.use(async (ctx, next) => {
    ctx.mountPath = issuerPath;
    await next();
  });
}

// oidc-provider drops offline_access from an authorization request unless its
// `prompt` includes "consent" (OIDC Core §11). Add "consent" instead, so
// offline_access (and with it a refresh token) is kept whenever it was
// requested; the native clients here see the consent page every time anyway.
provider.use(async (ctx, next) => {
  if (ctx.method === 'GET' && ctx.path === '/auth') {
    const { scope, prompt } = ctx.query;
    if (typeof scope === 'string' && scope.split(' ').includes('offline_access')
      && (prompt === undefined || typeof prompt === 'string')) {
      const prompts = (prompt ?? '').split(' ').filter(Boolean);
      if (!prompts.includes('consent') && !prompts.includes('none')) {
        ctx.query = { ...ctx.query, prompt: [...prompts, 'consent'].join(' ') };
      }
    }
  }
  await next();
});

// Request log on stderr: method, path and status only (no query strings or
// bodies, which carry codes and tokens).
provider.use(async (ctx, next) => {
  await next();
  console.error(`${ctx.method} ${ctx.path} -> ${ctx.status}`);
});

for (const event of ['server_error', 'authorization.error', 'grant.error', 'end_session.error',
  'revocation.error', 'introspection.error', 'userinfo.error', 'device_authorization.error',
  'code_verification.error']) {
  provider.on(event, (_ctx, err) => {
    console.error(`${event}: ${err?.name ?? 'Error'}: ${err?.message ?? err}`
      + `${err?.error_description ? ` (${err.error_description})` : ''}`);
  });
}

const callback = provider.callback();
if (issuerPath) {
  // Everything lives under the issuer path; strip it. Anything else is 404.
  server.on('request', (req, res) => {
    const url = req.url ?? '/';
    if (url === issuerPath || url.startsWith(`${issuerPath}/`) || url.startsWith(`${issuerPath}?`)) {
      req.url = url.slice(issuerPath.length) || '/';
      callback(req, res);
    } else {
      console.error(`${req.method} ${url.split('?')[0]} -> 404 (outside ${issuerPath})`);
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
} else {
  server.on('request', callback);
}

function shutdown(reason) {
  console.error(`oidc-provider server: stopping (${reason})`);
  server.close();
  server.closeAllConnections?.();
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
if (!args['ignore-stdin']) {
  process.stdin.on('end', () => shutdown('stdin closed'));
  process.stdin.on('error', () => shutdown('stdin error'));
  process.stdin.resume();
}

process.stdout.write(`${JSON.stringify({ issuer })}\n`);
console.error(`oidc-provider ${issuer} ready (clients ${JWT_CLIENT}, ${OPAQUE_CLIENT}; `
  + `resource ${API_RESOURCE} scopes ${API_SCOPES.join(' ')})`);
