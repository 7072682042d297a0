// Builds dist/chatbot.js (one ES module, dependencies bundled) and dist/chatbot.css.
import { rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = fileURLToPath(new URL(".", import.meta.url));
const outdir = `${root}dist`;

await rm(outdir, { recursive: true, force: true });
// The stylesheet writes each colour once with light-dark() (Baseline widely available since November
// 2026): these are the first browsers with it, so esbuild leaves it as written.
const common = { bundle: true, minify: true, sourcemap: true, target: ["es2022", "chrome123", "firefox120", "safari17.5"], legalComments: "linked", logLevel: "info" };
await esbuild.build({ ...common, entryPoints: [`${root}src/index.js`], outfile: `${outdir}/chatbot.js`, format: "esm" });
await esbuild.build({ ...common, entryPoints: [`${root}src/chatbot.css`], outfile: `${outdir}/chatbot.css` });
