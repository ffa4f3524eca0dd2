// Builds dist/ from src/: index.html, app.js (one bundle), app.css.
// Deterministic: fixed file names, no timestamps, no source maps; building twice gives the same bytes.
import * as esbuild from "esbuild";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";

const watch = process.argv.includes("--watch");
const options = {
  entryPoints: { app: "src/main.ts" },
  bundle: true,
  minify: !watch,
  format: "iife",
  target: ["es2020"],
  outdir: "dist",
  legalComments: "none",
  charset: "utf8",
  logLevel: "info",
};

rmSync("dist", { recursive: true, force: true });
mkdirSync("dist", { recursive: true });
copyFileSync("src/index.html", "dist/index.html");
if (watch) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
} else {
  await esbuild.build(options);
}
