// Gets one token with the real @azure/identity (tests/it/sdk.rs runs it inside and outside
// `tessera-cli run`).
//
//     node sdk_helper.cjs mi|dac SCOPE
//
// mi: ManagedIdentityCredential; dac: DefaultAzureCredential limited to managed identity
// (AZURE_TOKEN_CREDENTIALS). Prints {"token", "expires_on"} on stdout and exits 0, or
// {"error", "message"} and exits 1. Refuses to run (exit 2) unless IDENTITY_ENDPOINT and
// IDENTITY_HEADER point at 127.0.0.1: without them the SDK probes the VM metadata address.
"use strict";

// Hermetic: no service principal, tenant, authority or proxy from the caller's environment.
for (const name of Object.keys(process.env)) {
  if (name.startsWith("AZURE_") || ["http_proxy", "https_proxy", "all_proxy"].includes(name.toLowerCase())) {
    delete process.env[name];
  }
}

const { DefaultAzureCredential, ManagedIdentityCredential } = require("@azure/identity");

async function main() {
  const [kind, scope] = process.argv.slice(2);
  if (!(process.env.IDENTITY_ENDPOINT || "").startsWith("http://127.0.0.1:") || !process.env.IDENTITY_HEADER) {
    console.error("refusing: IDENTITY_ENDPOINT/IDENTITY_HEADER do not point at 127.0.0.1");
    return 2;
  }
  let credential;
  if (kind === "mi") {
    credential = new ManagedIdentityCredential();
  } else if (kind === "dac") {
    process.env.AZURE_TOKEN_CREDENTIALS = "ManagedIdentityCredential";
    credential = new DefaultAzureCredential();
  } else {
    console.error(`unknown credential ${kind}`);
    return 2;
  }
  try {
    const token = await credential.getToken(scope);
    console.log(JSON.stringify({ token: token.token, expires_on: Math.floor(token.expiresOnTimestamp / 1000) }));
    return 0;
  } catch (e) {
    console.log(JSON.stringify({ error: e.name, message: e.message }));
    return 1;
  }
}

main().then((code) => process.exit(code));
