// A minimal host application with Better Auth, set up as the README's "Connect your app" section says: the
// `jwt` plugin (EdDSA keys, published at /api/auth/jwks) and the `organization` plugin, with `definePayload`
// putting the active organization and the member's role in each token. Users, sessions, organizations and
// keys live in Better Auth's in-memory adapter, so every run starts empty.
//
// It listens on 127.0.0.1 (port from PORT, default: any free one) and prints one line of JSON,
// {"base_url": ...}, once it is ready. The chatbot's end-to-end test (test_better_auth.py) drives it over
// HTTP only: sign-up, organization, invitation, active organization, then GET /api/auth/token.
import http from "node:http";

import { betterAuth } from "better-auth";
import { memoryAdapter } from "better-auth/adapters/memory";
import { toNodeHandler } from "better-auth/node";
import { jwt, organization } from "better-auth/plugins";
import { createAccessControl } from "better-auth/plugins/access";
import {
  adminAc,
  defaultStatements,
  memberAc,
  ownerAc,
} from "better-auth/plugins/organization/access";

// The organization plugin knows owner, admin and member; the chatbot also has a read-only "viewer".
const ac = createAccessControl(defaultStatements);
const viewer = ac.newRole({ organization: [], member: [], invitation: [], team: [], ac: [] });

const server = http.createServer();
await new Promise((resolve) => server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", resolve));
const baseURL = `http://127.0.0.1:${server.address().port}`;

const database = {
  user: [],
  session: [],
  account: [],
  verification: [],
  jwks: [],
  organization: [],
  member: [],
  invitation: [],
};

const auth = betterAuth({
  baseURL,
  // Test-only secret: it encrypts the JWT plugin's private keys at rest in the (in-memory) database.
  secret: "better-auth-e2e-secret-better-auth-e2e-secret",
  database: memoryAdapter(database),
  emailAndPassword: { enabled: true },
  telemetry: { enabled: false },
  plugins: [
    organization({ ac, roles: { owner: ownerAc, admin: adminAc, member: memberAc, viewer } }),
    jwt({
      jwt: {
        // Issuer and audience are left to their default, the base URL, as most hosts do.
        expirationTime: "15m",
        async definePayload({ user, session }) {
          const organizationId = session.activeOrganizationId ?? null;
          const member = organizationId
            ? await (await auth.$context).adapter.findOne({
                model: "member",
                where: [
                  { field: "organizationId", value: organizationId },
                  { field: "userId", value: user.id },
                ],
              })
            : null;
          return {
            email: user.email,
            name: user.name,
            activeOrganizationId: organizationId,
            organizationRole: member?.role ?? null,
          };
        },
      },
    }),
  ],
});

server.on("request", toNodeHandler(auth));
process.stdout.write(`${JSON.stringify({ base_url: baseURL })}\n`);

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
