"""Gets one token with the real azure-identity (tests/it/sdk.rs runs it inside and outside
`tessera-cli run`).

    sdk_helper.py mi|dac SCOPE

mi: ManagedIdentityCredential; dac: DefaultAzureCredential with every credential but
managed identity excluded. Prints {"token", "expires_on"} on stdout and exits 0, or
{"error", "message"} and exits 1. Refuses to run (exit 2) unless IDENTITY_ENDPOINT and
IDENTITY_HEADER point at 127.0.0.1: without them the SDK probes the VM metadata address.
"""

import json
import os
import sys

# Hermetic: no service principal, tenant, authority or proxy from the caller's environment.
for _name in list(os.environ):
    if _name.startswith("AZURE_") or _name.lower() in ("http_proxy", "https_proxy", "all_proxy"):
        del os.environ[_name]

from azure.identity import DefaultAzureCredential, ManagedIdentityCredential  # noqa: E402


def main() -> int:
    kind, scope = sys.argv[1], sys.argv[2]
    if not os.environ.get("IDENTITY_ENDPOINT", "").startswith("http://127.0.0.1:") or not os.environ.get(
        "IDENTITY_HEADER"
    ):
        print("refusing: IDENTITY_ENDPOINT/IDENTITY_HEADER do not point at 127.0.0.1", file=sys.stderr)
        return 2
    if kind == "mi":
        credential = ManagedIdentityCredential()
    elif kind == "dac":
        credential = DefaultAzureCredential(
            exclude_environment_credential=True,
            exclude_workload_identity_credential=True,
            exclude_shared_token_cache_credential=True,
            exclude_visual_studio_code_credential=True,
            exclude_cli_credential=True,
            exclude_powershell_credential=True,
            exclude_developer_cli_credential=True,
            exclude_interactive_browser_credential=True,
            exclude_broker_credential=True,
        )
    else:
        print(f"unknown credential {kind!r}", file=sys.stderr)
        return 2
    try:
        token = credential.get_token(scope)
    except Exception as e:  # the SDK's own error types; the test reads the message
        print(json.dumps({"error": type(e).__name__, "message": str(e)}))
        return 1
    print(json.dumps({"token": token.token, "expires_on": token.expires_on}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
