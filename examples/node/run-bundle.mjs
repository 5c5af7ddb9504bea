#!/usr/bin/env node
// node run-bundle.mjs BUNDLE -o OUT.png [--iterations N] [--threads N] [--raw OUT.npy] [--quiet]
//
// Runs an nst-ort bundle of version 2 (`nst-ort bundle`, --backend ort-graph) with
// onnxruntime-node (native ONNX Runtime, multithreaded) and writes the image as PNG. The loop
// itself is ../web/nst-bundle.mjs, which the web page runs too.

import { availableParallelism } from 'node:os';
import { readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { parseArgs } from 'node:util';

import { PNG } from 'pngjs';

import { BundleError, checkManifest, fromRGBA, median, readInputs, runAdam, toRGBA } from '../web/nst-bundle.mjs';

const USAGE =
  'usage: node run-bundle.mjs BUNDLE -o OUT.png [--iterations N] [--threads N] [--raw OUT.npy] [--quiet]';

class UsageError extends Error {}

function fail(message, code) {
  process.stderr.write(`error: ${message}\n`);
  process.exit(code);
}

function readBundle(directory) {
  const manifestPath = join(directory, 'bundle.json');
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
  } catch (error) {
    if (error.code === 'ENOENT') {
      const folder = statSync(directory, { throwIfNoEntry: false })?.isDirectory();
      const what = folder ? 'not a bundle (no bundle.json)' : 'no such folder';
      throw new BundleError(`${directory}: ${what}`);
    }
    throw new BundleError(`${manifestPath}: unreadable (${error.message})`);
  }
  try {
    checkManifest(manifest);
  } catch (error) {
    throw new BundleError(`${manifestPath}: ${error.message}`);
  }
  const path = (role) => {
    const file = join(directory, manifest.files[role] ?? '');
    if (!manifest.files[role] || !statSync(file, { throwIfNoEntry: false })?.isFile()) {
      throw new BundleError(`${file}: missing from the bundle`);
    }
    return file;
  };
  const modelPath = path('model');
  const inputsPath = path('inputs');
  const inputs = readInputs(manifest, readFileSync(inputsPath), inputsPath);
  const initialPath = path('initial_image');
  let png;
  try {
    png = PNG.sync.read(readFileSync(initialPath));
  } catch (error) {
    throw new BundleError(`${initialPath}: not a PNG (${error.message})`);
  }
  const [, , height, width] = manifest.image.shape;
  if (png.width !== width || png.height !== height) {
    throw new BundleError(`${initialPath}: ${png.width}x${png.height} px, the bundle's image is ${width}x${height}`);
  }
  // pngjs decodes every colour type to 8-bit RGBA.
  return { manifest, modelPath, inputs, image: fromRGBA(png.data, width, height) };
}

/** Writes beside the target and renames: a reader never sees half a file. */
function writeAtomically(path, bytes) {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.part`);
  try {
    writeFileSync(tmp, bytes);
    renameSync(tmp, path);
  } catch (error) {
    rmSync(tmp, { force: true });
    fail(`${path}: cannot write (${error.code ?? error.message})`, 1);
  }
}

function pngBytes(image, shape) {
  const [, , height, width] = shape;
  const png = new PNG({ width, height });
  png.data = Buffer.from(toRGBA(image, shape).buffer);
  return PNG.sync.write(png, { colorType: 2 }); // RGB, no alpha
}

/** A .npy file (format 1.0) holding float32 little-endian C-order data of this shape. */
function npyBytes(data, shape) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}), }`;
  const unpadded = 10 + header.length + 1; // magic, version, header length, header, newline
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const prefix = Buffer.alloc(10);
  prefix.write('\x93NUMPY', 0, 'latin1');
  prefix[6] = 1;
  prefix[7] = 0;
  prefix.writeUInt16LE(header.length, 8);
  const body = Buffer.alloc(4 * data.length);
  for (let i = 0; i < data.length; i++) body.writeFloatLE(data[i], 4 * i);
  return Buffer.concat([prefix, Buffer.from(header, 'latin1'), body]);
}

function parseCommandLine() {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        output: { type: 'string', short: 'o' },
        iterations: { type: 'string' },
        threads: { type: 'string' },
        raw: { type: 'string' },
        quiet: { type: 'boolean', short: 'q', default: false },
      },
    });
  } catch (error) {
    throw new UsageError(`${error.message.split('\n')[0]} (${USAGE})`);
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1 || !values.output) throw new UsageError(USAGE);
  const count = (text, what) => {
    const n = Number(text);
    if (text.trim() === '' || !Number.isInteger(n) || n < 0) {
      throw new UsageError(`--${what} ${text}: expected a whole number >= 0`);
    }
    return n;
  };
  const iterations = values.iterations === undefined ? undefined : count(values.iterations, 'iterations');
  const threads = values.threads === undefined ? 0 : count(values.threads, 'threads');
  if (!values.output.toLowerCase().endsWith('.png')) {
    throw new UsageError(`${values.output}: the output is written as .png`);
  }
  if (values.raw !== undefined && !values.raw.toLowerCase().endsWith('.npy')) {
    throw new UsageError(`${values.raw}: --raw is written as .npy`);
  }
  for (const file of [values.output, values.raw].filter(Boolean)) {
    if (!statSync(dirname(file), { throwIfNoEntry: false })?.isDirectory()) {
      throw new UsageError(`${dirname(file)}: no such folder`);
    }
  }
  return { bundle: positionals[0], output: values.output, raw: values.raw, iterations, threads, quiet: values.quiet };
}

async function main() {
  let args;
  let bundle;
  try {
    args = parseCommandLine();
    bundle = readBundle(args.bundle);
  } catch (error) {
    if (error instanceof UsageError || error instanceof BundleError) fail(error.message, 2);
    throw error;
  }
  const { manifest, modelPath, inputs, image } = bundle;
  const ort = await import('onnxruntime-node');
  // Native ONNX Runtime: intra-op threads split each operator (the convolutions) across cores.
  // 0 leaves ONNX Runtime's default, one thread per physical core, as the Python driver does.
  const options = { executionProviders: ['cpu'], graphOptimizationLevel: 'all', logSeverityLevel: 3 };
  if (args.threads > 0) options.intraOpNumThreads = Math.min(args.threads, 4 * availableParallelism());
  let session;
  try {
    session = await ort.InferenceSession.create(modelPath, options);
  } catch (error) {
    fail(`${modelPath}: ONNX Runtime cannot load it (${error.message.split('\n')[0]})`, 2);
  }
  let stop = false;
  process.on('SIGINT', () => {
    stop = true;
  });
  const total = args.iterations ?? manifest.optimizer.iterations;
  const onStep = args.quiet
    ? undefined
    : (step, losses, _image, ms) =>
        process.stderr.write(`step ${step}/${total} loss ${losses.loss.toPrecision(4)} (${ms.toFixed(0)} ms)\n`);
  const result = await runAdam(ort, session, manifest, inputs, image, {
    iterations: args.iterations,
    onStep,
    shouldStop: () => stop,
  });
  await session.release();
  const shape = manifest.image.shape;
  writeAtomically(args.output, pngBytes(result.image, shape));
  if (args.raw) writeAtomically(args.raw, npyBytes(result.image, shape));
  if (result.status !== 'done') fail(`${result.message}; last good image saved to ${args.output}`, 1);
  if (!args.quiet) {
    const steps = result.losses.length;
    const last = steps ? result.losses[steps - 1].loss.toPrecision(4) : 'nan';
    const perStep = steps ? `median ${median(result.milliseconds).toFixed(0)} ms a step` : 'no steps';
    process.stdout.write(`done: ${args.output}; ${steps} steps, ${perStep}; loss ${last}\n`);
  }
}

main().catch((error) => fail(error.message ?? String(error), 1));
