// The page: loads a bundle (from a URL or picked files), optionally computes the targets of the
// user's own photo and painting, runs Adam with onnxruntime-web and shows the image as it forms.
// The loop itself is nst-bundle.mjs, shared with the Node driver (../node/run-bundle.mjs).
//
// Query parameters: ?bundle=URL (load it at once), &steps=N, &backend=auto|wasm|webgpu, &threads=N,
// &run=1.

import {
  BundleError,
  checkManifest,
  computeTargets,
  fromRGBA,
  gaussianBlur,
  median,
  readInputs,
  runAdam,
  toRGBA,
} from './nst-bundle.mjs';

// onnxruntime-web's ES module builds, served from `npm ci`'s node_modules next to this page. The
// WebGPU build also has the WebAssembly (CPU) backend; the plain WebAssembly build is smaller.
const ORT_MODULES = {
  wasm: './node_modules/onnxruntime-web/dist/ort.wasm.bundle.min.mjs',
  webgpu: './node_modules/onnxruntime-web/dist/ort.webgpu.bundle.min.mjs',
};

const $ = (id) => document.getElementById(id);
const state = {
  phase: 'idle', // idle | loading | ready | running | done | stopped | nonfinite | error
  message: 'Load a bundle.',
  bundle: null, // the bundle's name and size
  targets: null, // 'bundle' or 'yours'
  backend: null,
  threads: null,
  sessionMilliseconds: null,
  runs: 0, // Run presses
  step: 0,
  steps: 0,
  losses: [],
  milliseconds: [],
};
let bundle = null; // {manifest, modelBytes, inputs, initial}
let own = null; // {inputs, image}: from the user's photo and painting
let image = null; // the image shown: Float32Array, NCHW
let ort = null;
let session = null;
let sessionBackend = null;
let stopRequested = false;

// For tests and the console: the page's state and the current image as plain numbers.
window.nstPage = {
  state: () => JSON.parse(JSON.stringify(state)),
  image: () => (image ? Array.from(image) : null),
};

function setStatus(message, phase = state.phase) {
  state.message = message;
  state.phase = phase;
  const status = $('status');
  status.textContent = message;
  status.className = phase === 'error' ? 'error' : '';
}

function enable() {
  const busy = state.phase === 'loading' || state.phase === 'running';
  $('load-url').disabled = busy;
  $('bundle-files').disabled = busy;
  $('run').disabled = busy || !bundle;
  $('stop').disabled = state.phase !== 'running';
  $('use-own').disabled = busy || !bundle || !($('content-file').files.length || $('style-file').files.length);
  $('download').disabled = busy || !image;
}

/** Runs an event handler: one line in the status on failure, buttons kept in step. */
function guarded(handler) {
  return async (...args) => {
    try {
      await handler(...args);
    } catch (error) {
      console.error(error);
      const known = error instanceof BundleError || error instanceof UserError;
      setStatus(`error: ${known ? error.message : `${error.name}: ${error.message}`}`, 'error');
    } finally {
      enable();
    }
  };
}

class UserError extends Error {}

const megabytes = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;

// --- the bundle --------------------------------------------------------------------------------

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new UserError(`${url}: ${response.status} ${response.statusText}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** Decodes an image file to float32 NCHW at width x height, exactly (`exact`) or cropped to fit. */
async function decodeImage(blob, width, height, { exact = false, name = 'image' } = {}) {
  let bitmap;
  try {
    // No colour management or premultiplication: the file's 8-bit values, as Pillow reads them.
    bitmap = await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch {
    throw new UserError(`${name}: not an image this browser can decode`);
  }
  if (exact && (bitmap.width !== width || bitmap.height !== height)) {
    throw new BundleError(`${name}: ${bitmap.width}x${bitmap.height} px, the bundle's image is ${width}x${height}`);
  }
  // Crop the middle to the bundle's aspect, then scale to its size.
  let [sx, sy, sw, sh] = [0, 0, bitmap.width, bitmap.height];
  if (sw * height > sh * width) {
    sw = Math.max(1, Math.round((sh * width) / height));
    sx = Math.floor((bitmap.width - sw) / 2);
  } else {
    sh = Math.max(1, Math.round((sw * height) / width));
    sy = Math.floor((bitmap.height - sh) / 2);
  }
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext('2d', { willReadFrequently: true });
  context.imageSmoothingQuality = 'high';
  context.drawImage(bitmap, sx, sy, sw, sh, 0, 0, width, height);
  bitmap.close();
  return fromRGBA(context.getImageData(0, 0, width, height).data, width, height);
}

/** files: {manifest (parsed), model, inputs, initial: Uint8Array}. */
async function useBundle(name, manifest, files) {
  const [, , height, width] = manifest.image.shape;
  const inputs = readInputs(manifest, files.inputs);
  const initial = await decodeImage(new Blob([files.initial], { type: 'image/png' }), width, height, {
    exact: true,
    name: manifest.files.initial_image,
  });
  if (session) await session.release();
  session = null;
  bundle = { manifest, modelBytes: files.model, inputs, initial };
  own = null;
  image = initial.slice();
  const canvas = $('canvas');
  canvas.width = width;
  canvas.height = height;
  draw(image);
  Object.assign(state, { bundle: name, targets: 'bundle', step: 0, steps: 0, losses: [], milliseconds: [] });
  $('steps').value = new URLSearchParams(location.search).get('steps') ?? manifest.optimizer.iterations;
  const layers = manifest.loss ? ` · content ${Object.keys(manifest.loss.content_layers).join(', ')}` : '';
  $('bundle-info').textContent =
    `${name}: ${width}x${height} px, model ${megabytes(files.model.byteLength)}, ` +
    `Adam lr ${manifest.optimizer.learning_rate}${layers}`;
  drawChart();
  $('numbers').textContent = '';
  setStatus(`Bundle loaded (${width}x${height} px). Run it, or give it your own photo and painting.`, 'ready');
}

async function loadFromUrl() {
  const text = $('bundle-url').value.trim();
  if (!text) throw new UserError('give the bundle folder URL, e.g. bundle/');
  const base = new URL(text.endsWith('/') ? text : `${text}/`, location.href);
  setStatus(`Loading ${base.pathname}bundle.json…`, 'loading');
  enable();
  let manifest;
  try {
    manifest = JSON.parse(new TextDecoder().decode(await fetchBytes(new URL('bundle.json', base))));
  } catch (error) {
    if (error instanceof UserError) throw new UserError(`${error.message} (no bundle there?)`);
    throw new BundleError(`${base.pathname}bundle.json: not JSON`);
  }
  checkManifest(manifest);
  const files = {};
  for (const [role, key] of [['model', 'model'], ['inputs', 'inputs'], ['initial', 'initial_image']]) {
    setStatus(`Loading ${manifest.files[key]}…`, 'loading');
    files[role] = await fetchBytes(new URL(manifest.files[key], base));
  }
  await useBundle(base.pathname, manifest, files);
}

async function loadFromFiles() {
  const picked = new Map([...$('bundle-files').files].map((file) => [file.name, file]));
  if (picked.size === 0) return;
  setStatus('Reading the bundle files…', 'loading');
  enable();
  const read = async (name) => {
    if (!picked.has(name)) throw new UserError(`pick ${name} too (the bundle's files: bundle.json and those it names)`);
    return new Uint8Array(await picked.get(name).arrayBuffer());
  };
  let manifest;
  try {
    manifest = JSON.parse(new TextDecoder().decode(await read('bundle.json')));
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw new BundleError('bundle.json: not JSON');
  }
  checkManifest(manifest);
  const files = {
    model: await read(manifest.files.model),
    inputs: await read(manifest.files.inputs),
    initial: await read(manifest.files.initial_image),
  };
  await useBundle('picked files', manifest, files);
}

// --- ONNX Runtime -----------------------------------------------------------------------------

async function chooseBackend() {
  const wanted = $('backend').value;
  if (wanted === 'wasm') return 'wasm';
  const adapter = navigator.gpu ? await navigator.gpu.requestAdapter().catch(() => null) : null;
  if (adapter) return 'webgpu';
  if (wanted === 'webgpu') throw new UserError('WebGPU is not available in this browser; choose WebAssembly');
  return 'wasm';
}

async function getSession() {
  const backend = await chooseBackend();
  if (session && sessionBackend === backend) return session;
  if (session) await session.release();
  session = null;
  setStatus(`Creating the ${backend} session…`, state.phase);
  ort = await import(ORT_MODULES[backend]);
  ort.env.logLevel = 'error';
  // Threads need shared memory, which browsers give only to cross-origin-isolated pages
  // (serve.py sends the headers); otherwise one thread.
  const asked = Number(new URLSearchParams(location.search).get('threads'));
  const cores = Math.max(1, navigator.hardwareConcurrency || 1);
  const threads = self.crossOriginIsolated ? (asked >= 1 ? Math.min(asked, cores) : cores) : 1;
  ort.env.wasm.numThreads = threads;
  const start = performance.now();
  session = await ort.InferenceSession.create(bundle.modelBytes, {
    executionProviders: [backend],
    graphOptimizationLevel: 'all',
  });
  sessionBackend = backend;
  Object.assign(state, { backend, threads, sessionMilliseconds: performance.now() - start });
  return session;
}

// --- your own images ---------------------------------------------------------------------------

// The style blur the bundle's run gave its painting (bundle.json `source.style_blur`, σ in px at
// the side the style was resized to: nst_ort/targets.py, style_for_run), at the size a picked
// painting is decoded to here (the bundle's image). 0 for bundles written without it.
function styleBlur(width, height) {
  const longest = Math.max(width, height);
  const { style_blur: blur = 0, size = longest, style_scale: scale = 1 } = bundle.manifest.source ?? {};
  return (blur * longest) / Math.max(16, Math.round(size * scale));
}

async function useOwnImages() {
  const [, , height, width] = bundle.manifest.image.shape;
  const photo = $('content-file').files[0];
  const painting = $('style-file').files[0];
  setStatus('Computing the targets of your images…', 'loading');
  enable();
  const images = {
    content: photo ? await decodeImage(photo, width, height, { name: photo.name }) : null,
    style: painting ? await decodeImage(painting, width, height, { name: painting.name }) : null,
  };
  if (images.style) {
    images.style = gaussianBlur(images.style, bundle.manifest.image.shape, styleBlur(width, height));
  }
  const current = await getSession();
  const start = performance.now();
  const inputs = await computeTargets(ort, current, bundle.manifest, bundle.inputs, images);
  own = { inputs, image: images.content ?? bundle.initial };
  image = own.image.slice();
  draw(image);
  state.targets = 'yours';
  const which = [photo && 'photo', painting && 'painting'].filter(Boolean).join(' and ');
  setStatus(
    `Targets of your ${which} computed in ${(performance.now() - start).toFixed(0)} ms ` +
      `(${width}x${height} px); Run starts from ${photo ? 'the photo' : "the bundle's start"}.`,
    'ready',
  );
}

// --- running -------------------------------------------------------------------------------------

const nextTask = () => new Promise((resolve) => setTimeout(resolve, 0));

async function run() {
  state.runs += 1;
  const steps = Number($('steps').value);
  if (!Number.isInteger(steps) || steps < 1) throw new UserError('Steps: a whole number >= 1');
  stopRequested = false;
  setStatus('Starting…', 'running');
  enable();
  const current = await getSession();
  const manifest = bundle.manifest;
  image = (own?.image ?? bundle.initial).slice();
  Object.assign(state, { step: 0, steps, losses: [], milliseconds: [] });
  draw(image);
  drawChart();
  const threads = `${state.threads} thread${state.threads > 1 ? 's' : ''}`;
  const where = state.backend === 'wasm' ? `wasm, ${threads}` : state.backend;
  setStatus(`Running on ${where}…`, 'running');
  const result = await runAdam(ort, current, manifest, own?.inputs ?? bundle.inputs, image, {
    iterations: steps,
    shouldStop: () => stopRequested,
    onStep: async (step, losses, current, milliseconds) => {
      state.step = step;
      state.losses.push(losses);
      state.milliseconds.push(milliseconds);
      draw(current);
      drawChart();
      showNumbers();
      await nextTask(); // lets the page paint and see the Stop button
    },
  });
  const per = median(result.milliseconds);
  const targets = state.targets === 'yours' ? '; targets from your images' : '';
  const summary = `${result.losses.length} steps, median ${per.toFixed(0)} ms a step on ${where}${targets}`;
  if (result.status === 'done') setStatus(`Done: ${summary}.`, 'done');
  else if (result.status === 'stopped') setStatus(`Stopped: ${summary}.`, 'stopped');
  else setStatus(`Stopped: ${result.message} (the last good image is shown).`, 'nonfinite');
}

// --- drawing --------------------------------------------------------------------------------------

function draw(values) {
  const shape = bundle.manifest.image.shape;
  const [, , height, width] = shape;
  const context = $('canvas').getContext('2d');
  context.putImageData(new ImageData(toRGBA(values, shape), width, height), 0, 0);
}

function showNumbers() {
  const last = state.losses.at(-1);
  if (!last) return;
  const terms = Object.entries(last)
    .filter(([name]) => name !== 'loss')
    .map(([name, value]) => `${name.replace('loss.', '')} ${value.toPrecision(3)}`)
    .join(', ');
  $('numbers').textContent =
    `step ${state.step}/${state.steps} · loss ${last.loss.toPrecision(4)} (${terms}) · ` +
    `${median(state.milliseconds).toFixed(0)} ms a step`;
}

function drawChart() {
  const canvas = $('chart');
  const context = canvas.getContext('2d');
  const { width, height } = canvas;
  context.clearRect(0, 0, width, height);
  context.font = '22px system-ui, sans-serif';
  context.fillStyle = '#666';
  const values = state.losses.map((l) => l.loss).filter((v) => v > 0);
  if (values.length < 2) {
    context.fillText('loss (log scale) per step', 16, 32);
    return;
  }
  const logs = values.map(Math.log10);
  const [low, high] = [Math.min(...logs), Math.max(...logs)];
  const span = high - low || 1;
  const pad = 16;
  context.strokeStyle = '#1565c0';
  context.lineWidth = 3;
  context.beginPath();
  logs.forEach((v, i) => {
    const x = pad + ((width - 2 * pad) * i) / Math.max(1, state.steps - 1);
    const y = pad + (height - 2 * pad) * (1 - (v - low) / span);
    if (i === 0) context.moveTo(x, y);
    else context.lineTo(x, y);
  });
  context.stroke();
  context.fillText(`loss ${values.at(-1).toPrecision(4)} (log scale)`, pad, height - pad);
}

function download() {
  $('canvas').toBlob((blob) => {
    const link = document.createElement('a');
    link.href = URL.createObjectURL(blob);
    link.download = 'nst-ort.png';
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }, 'image/png');
}

// --- wiring -----------------------------------------------------------------------------------------

$('load-url').addEventListener('click', guarded(loadFromUrl));
$('bundle-files').addEventListener('change', guarded(loadFromFiles));
$('content-file').addEventListener('change', enable);
$('style-file').addEventListener('change', enable);
$('use-own').addEventListener('click', guarded(useOwnImages));
$('run').addEventListener('click', guarded(run));
$('stop').addEventListener('click', () => {
  stopRequested = true;
});
$('download').addEventListener('click', download);
drawChart();

const params = new URLSearchParams(location.search);
if (params.has('backend')) $('backend').value = params.get('backend');
if (params.has('bundle')) {
  $('bundle-url').value = params.get('bundle');
  guarded(async () => {
    await loadFromUrl();
    if (params.get('run') === '1') {
      enable();
      await guarded(run)();
    }
  })();
}
enable();
