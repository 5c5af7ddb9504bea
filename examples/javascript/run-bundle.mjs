#!/usr/bin/env node
// node run-bundle.mjs BUNDLE -o OUT.png [--iterations N] [--quiet]
//
// Runs an nst-ort bundle with onnxruntime-web 1.19.2's training build and writes the image as
// PNG. That package declares its `./training` export browser-only ("node": null), but the
// WebAssembly build behind it runs in Node 20, so this script imports the file itself.

import { readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { PNG } from 'pngjs';

import { checkManifest, runBundle, toRGBA } from './bundle.mjs';

const USAGE = 'usage: node run-bundle.mjs BUNDLE -o OUT.png [--iterations N] [--quiet]';

function fail(message, code = 2) {
  process.stderr.write(`error: ${message}\n`);
  process.exit(code);
}

async function loadOrtTraining() {
  // The package's main entry for Node sits in dist/, next to the training build.
  const main = createRequire(import.meta.url).resolve('onnxruntime-web');
  return import(pathToFileURL(join(dirname(main), 'ort.training.wasm.min.mjs')).href);
}

function readBundle(directory) {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(join(directory, 'bundle.json'), 'utf8'));
  } catch (error) {
    fail(`${directory}: not a bundle (${error.code === 'ENOENT' ? 'no bundle.json' : error.message})`);
  }
  try {
    checkManifest(manifest);
  } catch (error) {
    fail(`${join(directory, 'bundle.json')}: ${error.message}`);
  }
  const read = (role) => {
    const path = join(directory, manifest.files[role]);
    try {
      return readFileSync(path);
    } catch {
      return fail(`${path}: missing from the bundle`);
    }
  };
  return {
    manifest,
    files: {
      checkpoint: read('checkpoint'),
      trainingModel: read('training_model'),
      optimizerModel: read('optimizer_model'),
    },
  };
}

function writePng(path, image, shape) {
  const [, , height, width] = shape;
  const png = new PNG({ width, height });
  png.data = Buffer.from(toRGBA(image, shape).buffer); // pngjs takes RGBA and drops alpha on write
  // Written beside the target and renamed: a reader never sees half a file.
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.part`);
  try {
    writeFileSync(tmp, PNG.sync.write(png, { colorType: 2 })); // RGB, no alpha
    renameSync(tmp, path);
  } catch (error) {
    rmSync(tmp, { force: true });
    fail(`${path}: cannot write (${error.message})`, 1);
  }
}

async function main() {
  let args;
  try {
    args = parseArgs({
      allowPositionals: true,
      options: {
        output: { type: 'string', short: 'o' },
        iterations: { type: 'string' },
        quiet: { type: 'boolean', short: 'q', default: false },
      },
    });
  } catch (error) {
    fail(`${error.message}\n${USAGE}`);
  }
  const { values, positionals } = args;
  if (positionals.length !== 1 || !values.output) fail(USAGE);
  const count = (text, what) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 0) fail(`--${what} ${text}: expected a whole number >= 0`);
    return n;
  };
  const iterations = values.iterations === undefined ? undefined : count(values.iterations, 'iterations');
  if (!values.output.toLowerCase().endsWith('.png')) fail(`${values.output}: the output is written as .png`);
  if (!statSync(dirname(values.output), { throwIfNoEntry: false })?.isDirectory()) {
    fail(`${dirname(values.output)}: no such folder`);
  }

  const { manifest, files } = readBundle(positionals[0]);
  const ort = await loadOrtTraining();
  ort.env.logLevel = 'error';
  // One thread: for more, onnxruntime-web fetches its worker script by URL, which fails for a
  // file in Node ("fetch failed").
  ort.env.wasm.numThreads = 1;
  const start = performance.now();
  const total = iterations ?? manifest.optimizer.iterations;
  const onStep = values.quiet
    ? undefined
    : (step, losses) => process.stderr.write(`step ${step}/${total} loss ${losses.loss.toPrecision(4)}\n`);
  const result = await runBundle(ort, manifest, files, { iterations, onStep });
  writePng(values.output, result.image, result.shape);
  const seconds = ((performance.now() - start) / 1000).toFixed(1);
  if (result.status !== 'done') fail(`stopped: ${result.message}; last good image saved to ${values.output}`, 1);
  if (!values.quiet) {
    const last = result.losses.at(-1);
    const loss = last ? last.loss.toPrecision(4) : 'nan';
    process.stdout.write(`done: ${values.output} in ${seconds} s, ${result.losses.length} steps; loss ${loss}\n`);
  }
}

main().catch((error) => fail(error.message ?? String(error), 1));
