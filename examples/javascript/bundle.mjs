// Runs an nst-ort bundle with ONNX Runtime's JavaScript training API. No Node or browser APIs
// are used here: pass in the `ort` module (onnxruntime-web's training build) and the bundle's
// files as bytes, so the same code serves run-bundle.mjs (Node) and a web page.

export const FORMAT = 'nst-ort-bundle';
export const VERSION = 1;

/** Checks bundle.json; throws an Error with a one-line message. */
export function checkManifest(manifest) {
  if (!manifest || manifest.format !== FORMAT) {
    throw new Error('not an nst-ort bundle manifest');
  }
  if (manifest.version === 2) {
    throw new Error('bundle version 2 (ort-graph): run it with examples/node or the page in examples/web');
  }
  if (manifest.version !== VERSION) {
    throw new Error(`bundle version ${manifest.version}, this driver reads version ${VERSION}`);
  }
  for (const key of ['files', 'image', 'training_model', 'optimizer']) {
    if (!manifest[key]) throw new Error(`damaged manifest: no "${key}"`);
  }
  return manifest;
}

/**
 * Runs the bundle's Adam loop: reset gradients, train step, optimizer step, clip the image to
 * the pixel range. The learning rate is fixed in the optimizer model (the JavaScript API has no
 * setter), Adam's moments live inside ONNX Runtime, and the image is the only trainable
 * parameter, so the contiguous trainable buffer is the image itself (NCHW float32).
 *
 * @param ort the onnxruntime-web training module
 * @param manifest parsed bundle.json
 * @param files {checkpoint, trainingModel, optimizerModel}: Uint8Array each
 * @param options {iterations, onStep(step, losses)}
 * @returns {image: Float32Array, shape, losses: object[], status: 'done' | 'nonfinite', message}
 */
export async function runBundle(ort, manifest, files, { iterations, onStep } = {}) {
  checkManifest(manifest);
  const steps = iterations ?? manifest.optimizer.iterations;
  const [low, high] = manifest.optimizer.clip;
  const shape = manifest.image.shape;
  const outputs = manifest.training_model.outputs.map((o) => o.name);
  const session = await ort.TrainingSession.create({
    checkpointState: files.checkpoint,
    trainModel: files.trainingModel,
    optimizerModel: files.optimizerModel,
  });
  try {
    const size = shape.reduce((a, b) => a * b, 1);
    const trainable = await session.getParametersSize(true);
    if (trainable !== size) {
      throw new Error(`the bundle trains ${trainable} values, not the ${size} of its image ${shape}`);
    }
    let image = (await session.getContiguousParameters(true)).data;
    const result = { image, shape, losses: [], status: 'done', message: '' };
    for (let step = 1; step <= steps; step++) {
      await session.lazyResetGrad(); // gradients accumulate across steps otherwise
      const fetched = await session.runTrainStep({});
      const losses = Object.fromEntries(outputs.map((name) => [name, Number(fetched[name].data[0])]));
      const bad = outputs.find((name) => !Number.isFinite(losses[name]));
      if (bad !== undefined) {
        result.status = 'nonfinite';
        result.message = `step ${step}: ${bad} became ${losses[bad]}`;
        break;
      }
      await session.runOptimizerStep();
      // Projected Adam: pixels stay in the range, as in the Python driver.
      image = (await session.getContiguousParameters(true)).data;
      for (let i = 0; i < image.length; i++) {
        image[i] = Math.min(high, Math.max(low, image[i]));
      }
      await session.loadParametersBuffer(new Uint8Array(image.buffer, image.byteOffset, image.byteLength), true);
      result.image = image;
      result.losses.push(losses);
      if (onStep) onStep(step, losses);
    }
    return result;
  } finally {
    await session.release();
  }
}

/** NCHW float32 RGB in [0, 1] -> RGBA bytes (height x width x 4), rounded like the Python driver. */
export function toRGBA(image, shape) {
  const [, channels, height, width] = shape;
  if (channels !== 3) throw new Error(`expected 3 channels, got ${channels}`);
  const plane = height * width;
  const rgba = new Uint8Array(plane * 4);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      const v = Math.min(1, Math.max(0, image[c * plane + p]));
      rgba[p * 4 + c] = Math.floor(v * 255 + 0.5);
    }
    rgba[p * 4 + 3] = 255;
  }
  return rgba;
}
