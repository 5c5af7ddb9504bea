// Runs an nst-ort bundle of version 2 (`nst-ort bundle --backend ort-graph`): the loss and its
// gradient with respect to the image in one ONNX model, run by a plain ONNX Runtime session,
// with Adam on the host. No Node or browser APIs are used here: the caller passes in the `ort`
// module (onnxruntime-node or onnxruntime-web), a session it created on the bundle's model, and
// the bundle's files as bytes, so the same code serves run-bundle.mjs (Node) and the page.
//
// The loop, as bundle.json's `loop` says and the Python reference driver does it:
//   inputs = the model's inputs from inputs.bin (targets) and bundle.json (scalar weights)
//   image  = initial.png / 255, float32 NCHW
//   repeat: terms, gradient = run(image, inputs); stop if a term is not finite;
//           image = Adam step (torch.optim.Adam's update); image = clip(image, 0, 1)

export const FORMAT = 'nst-ort-bundle';
export const VERSION = 2;
const TRAINING_VERSION = 1;

/** A bundle this code cannot run: the message is one line for the user. */
export class BundleError extends Error {}

/** Checks bundle.json (parsed); throws a BundleError. */
export function checkManifest(manifest) {
  if (!manifest || typeof manifest !== 'object' || manifest.format !== FORMAT) {
    throw new BundleError('not an nst-ort bundle manifest');
  }
  if (manifest.version === TRAINING_VERSION) {
    throw new BundleError(
      'bundle version 1 (onnxruntime-training artifacts): run it with examples/javascript ' +
        '(onnxruntime-web 1.19.2) or `nst-ort run-bundle`, or write it again with --backend ort-graph',
    );
  }
  if (manifest.version !== VERSION) {
    throw new BundleError(`bundle version ${manifest.version}, this driver reads version ${VERSION}`);
  }
  for (const key of ['files', 'image', 'model', 'optimizer']) {
    if (!manifest[key] || typeof manifest[key] !== 'object') {
      throw new BundleError(`damaged manifest: no "${key}"`);
    }
  }
  const { image, model, optimizer } = manifest;
  const shape = image.shape;
  if (!Array.isArray(shape) || shape.length !== 4 || shape[0] !== 1 || shape[1] !== 3) {
    throw new BundleError(`damaged manifest: image shape ${JSON.stringify(shape)} is not [1, 3, H, W]`);
  }
  if (!Array.isArray(model.inputs) || !model.outputs || !Array.isArray(model.outputs.terms)) {
    throw new BundleError('damaged manifest: no model inputs or outputs');
  }
  for (const key of ['learning_rate', 'betas', 'eps', 'iterations', 'clip']) {
    if (optimizer[key] === undefined) throw new BundleError(`damaged manifest: no optimizer "${key}"`);
  }
  if (optimizer.name !== 'adam') throw new BundleError(`optimizer ${optimizer.name}: this driver runs adam`);
  return manifest;
}

const product = (dims) => dims.reduce((a, b) => a * b, 1);

/**
 * The model's inputs other than the image, as {name: {data: Float32Array, dims}}: tensors from
 * inputs.bin (float32, little-endian, each at its byte `offset` for `length` values), scalars
 * from bundle.json's `value`. `label` names the file in errors.
 */
export function readInputs(manifest, bytes, label = manifest.files.inputs) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const inputs = {};
  for (const entry of manifest.model.inputs) {
    const { name, shape } = entry;
    if ((entry.dtype ?? 'float32') !== 'float32') throw new BundleError(`input ${name} is not float32`);
    if (name === manifest.image.name) continue;
    const size = product(shape);
    const data = new Float32Array(size);
    if (entry.value !== undefined) {
      data.fill(entry.value);
    } else {
      const { offset, length } = entry;
      if (length !== size || offset % 4 !== 0 || offset < 0 || offset + 4 * length > bytes.byteLength) {
        throw new BundleError(`${label}: damaged (input ${name} does not fit)`);
      }
      for (let i = 0; i < size; i++) data[i] = view.getFloat32(offset + 4 * i, true);
    }
    inputs[name] = { data, dims: shape };
  }
  return inputs;
}

/** RGBA bytes (height x width x 4, e.g. a decoded PNG or ImageData) -> float32 NCHW RGB v / 255. */
export function fromRGBA(rgba, width, height) {
  const plane = width * height;
  const image = new Float32Array(3 * plane);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) image[c * plane + p] = rgba[4 * p + c] / 255; // rounded to float32
  }
  return image;
}

/** NCHW float32 RGB in [0, 1] -> RGBA bytes (height x width x 4), rounded like the Python driver. */
export function toRGBA(image, shape) {
  const [, channels, height, width] = shape;
  if (channels !== 3) throw new Error(`expected 3 channels, got ${channels}`);
  const plane = height * width;
  const rgba = new Uint8ClampedArray(plane * 4);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      const v = Math.min(1, Math.max(0, image[c * plane + p]));
      rgba[p * 4 + c] = Math.floor(v * 255 + 0.5);
    }
    rgba[p * 4 + 3] = 255;
  }
  return rgba;
}

const f32 = Math.fround;

/**
 * torch.optim.Adam's update (bias-corrected, no weight decay), with the Python driver's
 * arithmetic: m and v in float32, the denominator and step in float64, the image rounded back
 * to float32. (Float64 arithmetic rounded to float32 gives the float32 result exactly for
 * +, -, *, / and sqrt, so Math.fround reproduces numpy's float32 operations.)
 */
export class Adam {
  constructor(size, { learning_rate: lr, betas, eps }) {
    this.lr = lr;
    [this.beta1, this.beta2] = betas;
    this.eps = eps;
    this.m = new Float32Array(size);
    this.v = new Float32Array(size);
    this.t = 0;
  }

  /** x -= lr·m̂/(√v̂ + eps), in place, then x = clip(x, low, high). Returns false if x became NaN. */
  step(x, grad, [low, high]) {
    const { m, v, beta1, beta2 } = this;
    this.t += 1;
    const b1 = f32(beta1);
    const c1 = f32(1 - beta1);
    const b2 = f32(beta2);
    const c2 = f32(1 - beta2);
    const scale = Math.sqrt(1 - beta2 ** this.t);
    const a = f32(this.lr / (1 - beta1 ** this.t));
    const eps = this.eps;
    let finite = true;
    for (let i = 0; i < x.length; i++) {
      const g = grad[i];
      const mi = f32(f32(b1 * m[i]) + f32(c1 * g));
      const vi = f32(f32(b2 * v[i]) + f32(f32(c2 * g) * g));
      m[i] = mi;
      v[i] = vi;
      const denom = f32(Math.sqrt(vi)) / scale + eps;
      const xi = f32(x[i] - f32(a * mi) / denom);
      // Projected Adam: pixels stay in range. NaN passes min/max unchanged and is caught here.
      x[i] = Math.min(high, Math.max(low, xi));
      if (xi !== xi) finite = false;
    }
    return finite;
  }
}

/** ort.Tensor for each input (created once; ONNX Runtime reads them on every run). */
function tensors(ort, inputs) {
  return Object.fromEntries(
    Object.entries(inputs).map(([name, { data, dims }]) => [name, new ort.Tensor('float32', data, dims)]),
  );
}

/**
 * `image` (float32 NCHW of `shape`) blurred by a Gaussian of σ = `sigma` px in height and width,
 * each channel on its own, as scipy.ndimage.gaussian_filter does it for the engine (mode
 * 'reflect', the kernel truncated at 4σ; nst_ort/targets.py, style_for_run): the style blur of a
 * painting whose targets are computed here. σ <= 0: the image itself.
 */
export function gaussianBlur(image, shape, sigma) {
  if (!(sigma > 0)) return image;
  const [, channels, height, width] = shape;
  const radius = Math.floor(4 * sigma + 0.5);
  const kernel = Array.from({ length: 2 * radius + 1 }, (_, i) =>
    Math.exp(-0.5 * ((i - radius) / sigma) ** 2),
  );
  const total = kernel.reduce((a, b) => a + b, 0);
  const weights = kernel.map((k) => k / total);
  // scipy's 'reflect': the edge pixel repeats (d c b a | a b c d | d c b a).
  const reflect = (i, n) => {
    const j = ((i % (2 * n)) + 2 * n) % (2 * n);
    return j < n ? j : 2 * n - 1 - j;
  };
  // Along the height, then along the width (scipy's axis order), each pass rounded to float32
  // as scipy's is.
  const blurAxis = (source, stride, count, lines) => {
    const result = new Float32Array(source.length);
    for (const start of lines) {
      for (let i = 0; i < count; i++) {
        let sum = 0;
        for (let k = -radius; k <= radius; k++) {
          sum += weights[k + radius] * source[start + reflect(i + k, count) * stride];
        }
        result[start + i * stride] = sum;
      }
    }
    return result;
  };
  const plane = height * width;
  const columnStarts = [];
  const rowStarts = [];
  for (let c = 0; c < channels; c++) {
    for (let x = 0; x < width; x++) columnStarts.push(c * plane + x);
    for (let y = 0; y < height; y++) rowStarts.push(c * plane + y * width);
  }
  const down = blurAxis(image, width, height, columnStarts);
  return blurAxis(down, 1, width, rowStarts);
}

/**
 * Content features and style Grams of the user's own images, from the bundle's model: besides
 * the loss and gradient, it outputs the features and Grams of its input image for each layer in
 * use (bundle.json `model.targets`), so one run per image gives the targets. Returns a copy of
 * `inputs` with those targets replaced. `images`: {content, style}, float32 NCHW at the bundle's
 * size (either may be missing: its targets stay the bundle's).
 */
export async function computeTargets(ort, session, manifest, inputs, images) {
  const result = { ...inputs };
  const feeds = tensors(ort, inputs);
  const shape = manifest.image.shape;
  for (const [role, image] of Object.entries(images)) {
    if (!image) continue;
    const targets = manifest.model.targets.filter((t) => t.image === role);
    if (targets.length === 0) continue;
    feeds[manifest.image.name] = new ort.Tensor('float32', image, shape);
    const out = await session.run(
      feeds,
      targets.map((t) => t.output),
    );
    for (const t of targets) {
      const value = out[t.output];
      result[t.input] = { data: new Float32Array(value.data), dims: inputs[t.input].dims };
      if (t.normalize) {
        // The term is relative to its target (bundle.json `loss.normalize`): its weight follows.
        const { weight, base, scale } = t.normalize;
        let total = 0;
        for (const v of value.data) total += v * v;
        const data = new Float32Array([total > 0 ? (base * scale) / total : base]);
        result[weight] = { data, dims: inputs[weight].dims };
      }
    }
  }
  return result;
}

/**
 * Runs Adam on `image` (float32 NCHW, changed in place) for `iterations` steps.
 *
 * @param ort onnxruntime-node or onnxruntime-web
 * @param session an InferenceSession on the bundle's model
 * @param manifest bundle.json, checked
 * @param inputs readInputs(...) or computeTargets(...)
 * @param image Float32Array, the initial image (NCHW)
 * @param options {iterations, onStep(step, losses, image, milliseconds), shouldStop()}: onStep may
 *   return a promise (the page draws the image and yields); shouldStop() true ends the loop
 * @returns {image, losses: object[], milliseconds: number[], status: done | nonfinite | stopped, message}
 */
export async function runAdam(ort, session, manifest, inputs, image, { iterations, onStep, shouldStop } = {}) {
  const { optimizer } = manifest;
  const steps = iterations ?? optimizer.iterations;
  const shape = manifest.image.shape;
  if (image.length !== product(shape)) throw new BundleError(`the initial image is not ${shape.join('x')}`);
  const terms = manifest.model.outputs.terms;
  const gradient = manifest.model.outputs.gradient;
  const fetches = [...terms, gradient];
  const feeds = tensors(ort, inputs);
  const adam = new Adam(image.length, optimizer);
  const result = { image, losses: [], milliseconds: [], status: 'done', message: '' };
  const next = new Float32Array(image.length); // the step's iterate, kept only when finite
  for (let step = 1; step <= steps; step++) {
    if (shouldStop?.()) {
      result.status = 'stopped';
      result.message = `stopped after ${step - 1} steps`;
      break;
    }
    const start = performance.now();
    feeds[manifest.image.name] = new ort.Tensor('float32', image, shape);
    const out = await session.run(feeds, fetches);
    const losses = Object.fromEntries(terms.map((name) => [name, Number(out[name].data[0])]));
    const bad = terms.find((name) => !Number.isFinite(losses[name]));
    if (bad !== undefined) {
      result.status = 'nonfinite';
      result.message = `step ${step}: ${bad} became ${losses[bad]}`;
      break;
    }
    next.set(image);
    if (!adam.step(next, out[gradient].data, optimizer.clip)) {
      result.status = 'nonfinite';
      result.message = `step ${step}: the gradient became non-finite`;
      break;
    }
    image.set(next);
    const milliseconds = performance.now() - start;
    result.losses.push(losses);
    result.milliseconds.push(milliseconds);
    if (onStep) await onStep(step, losses, image, milliseconds);
  }
  return result;
}

/** The median of per-step times, or NaN. */
export function median(values) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
