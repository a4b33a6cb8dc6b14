// Bundles the extension (client/src) and its npm dependencies into one file, dist/extension.js.
// `vscode` is provided by the editor at run time, so it stays external. Usage: node client/esbuild.mjs [--watch]
import * as esbuild from "esbuild";

const watch = process.argv.includes("--watch");
const options = {
  entryPoints: ["client/src/extension.ts"],
  bundle: true,
  outfile: "dist/extension.js",
  external: ["vscode"],
  format: "cjs",
  platform: "node",
  target: "node20",
  sourcemap: "linked",
  minify: !watch,
  logLevel: "info",
};

if (watch) {
  const context = await esbuild.context(options);
  await context.watch();
} else {
  await esbuild.build(options);
}
