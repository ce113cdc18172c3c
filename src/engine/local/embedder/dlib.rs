//! The dlib ResNet face descriptor, built from the TF.js weights manifest.
//!
//! The weights come as a TF.js manifest (names, shapes, quantisation) plus one binary file with
//! the tensors packed back to back. Nothing ships this network as ONNX, so [`Dlib::load`]
//! writes the graph itself: it dequantises every tensor, folds each convolution's per-channel
//! affine "scale" layer into the convolution's filters and bias, emits an ONNX `ModelProto` in
//! NCHW layout, and hands it to tract, which optimises it once into a runnable plan.
//!
//! The wiring follows dlib's ResNet-29 as ported by face-api.js:
//!
//! ```text
//! chip 3×150×150, (rgb − mean) / 255
//! conv32_down     7×7/2 valid + ReLU                    32×72×72
//! max-pool        3×3/2 valid                           32×35×35
//! conv32_1..3     residual                              32×35×35
//! conv64_down     down block                            64×17×17
//! conv64_1..3     residual                              64×17×17
//! conv128_down    down block                           128×8×8
//! conv128_1..2    residual                             128×8×8
//! conv256_down    down block (main branch padded 3→4)  256×4×4
//! conv256_1..2    residual                             256×4×4
//! conv256_down_out down block (main branch padded 1→2) 256×2×2
//! global average pool, then × fc [256,128]             128
//! ```
//!
//! A residual block is conv3×3 (same) + ReLU, conv3×3 (same), plus the input, ReLU. A down block's
//! main branch is conv3×3/2 (valid) + ReLU, conv3×3 (same); its shortcut is a 2×2/2 average pool,
//! with zero channels appended when the width doubles; when the main branch comes out one pixel
//! smaller than the shortcut, it gets a zero row at the bottom and a zero column at the right.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use tract_onnx::pb;
use tract_onnx::prelude::*;

use super::{EmbedderError, Network};

/// Per-channel mean (R, G, B) subtracted from the chip before scaling by 1/255.
const MEAN_RGB: [f32; 3] = [122.782, 117.001, 104.298];

/// Side of the aligned chip the network takes.
const SIDE: usize = 150;

/// Length of the descriptor.
const DESCRIPTOR_LEN: usize = 128;

const INPUT_NAME: &str = "chip";
const OUTPUT_NAME: &str = "descriptor";

/// ONNX operator set the generated graph is written against (Pad still takes its pads as an attribute).
const OPSET_VERSION: i64 = 10;

/// The dlib network, optimised once.
pub struct Dlib {
    plan: Arc<TypedRunnableModel>,
}

impl Dlib {
    /// Reads the TF.js manifest and its weights file, builds the network and optimises it.
    pub fn load(manifest: &Path, weights: &Path) -> Result<Self, EmbedderError> {
        let tensors = read_weights(manifest, weights)?;
        let proto =
            build_graph(&tensors).map_err(|detail| EmbedderError::Manifest { path: manifest.to_path_buf(), detail })?;
        let plan = tract_onnx::onnx()
            .model_for_proto_model(&proto)?
            .with_input_fact(0, f32::fact([1, 3, SIDE, SIDE]).into())?
            .into_optimized()?
            .into_runnable()?;
        Ok(Self { plan })
    }
}

impl Network for Dlib {
    fn describe(&self, chip: &image::RgbImage) -> Result<Vec<f32>, EmbedderError> {
        let plane = SIDE * SIDE;
        let mut planar = vec![0f32; 3 * plane];
        for (i, pixel) in chip.pixels().enumerate() {
            for (c, (&value, mean)) in pixel.0.iter().zip(MEAN_RGB).enumerate() {
                planar[c * plane + i] = (f32::from(value) - mean) / 255.0;
            }
        }
        let input = Tensor::from_shape(&[1, 3, SIDE, SIDE], &planar)?;
        let outputs = self.plan.run(tvec!(input.into_tvalue()))?;
        Ok(outputs[0].to_plain_array_view::<f32>()?.iter().copied().collect())
    }
}

#[derive(Debug, Deserialize)]
struct ManifestGroup {
    weights: Vec<WeightSpec>,
}

#[derive(Debug, Deserialize)]
struct WeightSpec {
    name: String,
    shape: Vec<usize>,
    dtype: String,
    quantization: Option<Quantization>,
}

#[derive(Debug, Deserialize)]
struct Quantization {
    dtype: String,
    scale: f64,
    min: f64,
}

/// How one tensor is stored in the weights file.
#[derive(Debug, Clone, Copy)]
enum Storage {
    Float32,
    Uint8 { scale: f64, min: f64 },
    Uint16 { scale: f64, min: f64 },
}

impl Storage {
    fn bytes_per_value(self) -> usize {
        match self {
            Storage::Float32 => 4,
            Storage::Uint8 { .. } => 1,
            Storage::Uint16 { .. } => 2,
        }
    }

    fn decode(self, bytes: &[u8]) -> Vec<f32> {
        match self {
            Storage::Float32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            Storage::Uint8 { scale, min } => bytes.iter().map(|&q| (f64::from(q) * scale + min) as f32).collect(),
            Storage::Uint16 { scale, min } => bytes
                .chunks_exact(2)
                .map(|b| (f64::from(u16::from_le_bytes([b[0], b[1]])) * scale + min) as f32)
                .collect(),
        }
    }
}

impl WeightSpec {
    fn storage(&self) -> Result<Storage, String> {
        if self.dtype != "float32" {
            return Err(format!("tensor {:?} has dtype {:?}; only float32 is supported", self.name, self.dtype));
        }
        match &self.quantization {
            None => Ok(Storage::Float32),
            Some(q) if !(q.scale.is_finite() && q.min.is_finite()) => {
                Err(format!("tensor {:?} has a non-finite quantisation scale or min", self.name))
            }
            Some(q) if q.dtype == "uint8" => Ok(Storage::Uint8 { scale: q.scale, min: q.min }),
            Some(q) if q.dtype == "uint16" => Ok(Storage::Uint16 { scale: q.scale, min: q.min }),
            Some(q) => Err(format!("tensor {:?} uses unsupported quantisation {:?}", self.name, q.dtype)),
        }
    }
}

/// A dequantised tensor with its TF.js shape.
#[derive(Debug)]
struct Weight {
    shape: Vec<usize>,
    values: Vec<f32>,
}

type Weights = HashMap<String, Weight>;

/// Parses the manifest and decodes every tensor it lists from the weights file.
///
/// The weights file is the manifest's shards concatenated in order (a single shard here), so its
/// length must equal the sum of the tensors' stored sizes.
fn read_weights(manifest: &Path, weights: &Path) -> Result<Weights, EmbedderError> {
    let unreadable = |path: &Path| {
        let path = path.to_path_buf();
        move |source| EmbedderError::Unreadable { path, source }
    };
    let malformed = |detail: String| EmbedderError::Manifest { path: manifest.to_path_buf(), detail };

    let text = std::fs::read(manifest).map_err(unreadable(manifest))?;
    let groups: Vec<ManifestGroup> = serde_json::from_slice(&text).map_err(|e| malformed(e.to_string()))?;
    let specs: Vec<&WeightSpec> = groups.iter().flat_map(|g| &g.weights).collect();
    if specs.is_empty() {
        return Err(malformed("it lists no tensors".to_owned()));
    }

    let mut layout = Vec::with_capacity(specs.len());
    let mut expected = 0u64;
    for spec in &specs {
        let storage = spec.storage().map_err(&malformed)?;
        let count = spec
            .shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| malformed(format!("tensor {:?} has an absurd shape {:?}", spec.name, spec.shape)))?;
        let bytes = count * storage.bytes_per_value();
        expected += bytes as u64;
        layout.push((storage, bytes));
    }

    let data = std::fs::read(weights).map_err(unreadable(weights))?;
    if data.len() as u64 != expected {
        return Err(EmbedderError::WeightsSize { path: weights.to_path_buf(), expected, actual: data.len() as u64 });
    }

    let mut tensors = Weights::with_capacity(specs.len());
    let mut offset = 0;
    for (spec, (storage, bytes)) in specs.iter().zip(layout) {
        let values = storage.decode(&data[offset..offset + bytes]);
        offset += bytes;
        let weight = Weight { shape: spec.shape.clone(), values };
        if tensors.insert(spec.name.clone(), weight).is_some() {
            return Err(malformed(format!("tensor {:?} is listed twice", spec.name)));
        }
    }
    Ok(tensors)
}

/// A value flowing through the graph being written: its name and NCHW size (batch 1, square).
#[derive(Debug, Clone)]
struct Value {
    name: String,
    channels: usize,
    side: usize,
}

/// Spatial padding of a convolution, as TF.js understands it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Padding {
    Valid,
    Same,
}

/// Shape and activation of one convolution layer.
#[derive(Debug, Clone, Copy)]
struct ConvSpec {
    kernel: usize,
    out_channels: usize,
    stride: usize,
    padding: Padding,
    relu: bool,
}

impl ConvSpec {
    /// The stem: 7×7, stride 2, no padding, ReLU.
    const STEM: ConvSpec = ConvSpec { kernel: 7, out_channels: 32, stride: 2, padding: Padding::Valid, relu: true };

    /// 3×3, stride 1, size-preserving padding.
    fn same(out_channels: usize, relu: bool) -> Self {
        ConvSpec { kernel: 3, out_channels, stride: 1, padding: Padding::Same, relu }
    }

    /// 3×3, stride 2, no padding, ReLU: the first layer of a down block.
    fn down(out_channels: usize) -> Self {
        ConvSpec { kernel: 3, out_channels, stride: 2, padding: Padding::Valid, relu: true }
    }
}

/// Output side of a window of `kernel` moved by `stride` over `side` pixels without padding.
fn valid_side(side: usize, kernel: usize, stride: usize) -> usize {
    (side - kernel) / stride + 1
}

/// Writes the network as ONNX nodes and initialisers.
struct GraphWriter<'w> {
    weights: &'w Weights,
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
}

impl<'w> GraphWriter<'w> {
    fn weight(&self, name: &str, shape: &[usize]) -> Result<&'w [f32], String> {
        let weight = self.weights.get(name).ok_or_else(|| format!("tensor {name:?} is missing"))?;
        if weight.shape != shape {
            return Err(format!("tensor {name:?} has shape {:?}, expected {shape:?}", weight.shape));
        }
        Ok(&weight.values)
    }

    fn constant(&mut self, name: String, dims: &[usize], values: Vec<f32>) -> String {
        self.initializers.push(pb::TensorProto {
            name: name.clone(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: pb::tensor_proto::DataType::Float as i32,
            float_data: values,
            ..Default::default()
        });
        name
    }

    fn node(&mut self, op: &str, name: String, inputs: Vec<String>, attributes: Vec<pb::AttributeProto>) -> String {
        self.nodes.push(pb::NodeProto {
            op_type: op.to_owned(),
            name: name.clone(),
            input: inputs,
            output: vec![name.clone()],
            attribute: attributes,
            ..Default::default()
        });
        name
    }

    /// Convolution `{prefix}/conv` followed by its scale layer `{prefix}/scale`, folded into one
    /// ONNX Conv, with an optional ReLU.
    fn conv(&mut self, x: &Value, prefix: &str, spec: ConvSpec) -> Result<Value, String> {
        let ConvSpec { kernel, out_channels: cout, stride, padding, relu } = spec;
        let cin = x.channels;
        let filters = self.weight(&format!("{prefix}/conv/filters"), &[kernel, kernel, cin, cout])?;
        let bias = self.weight(&format!("{prefix}/conv/bias"), &[cout])?;
        let gain = self.weight(&format!("{prefix}/scale/weights"), &[cout])?;
        let shift = self.weight(&format!("{prefix}/scale/biases"), &[cout])?;

        // TF.js filters are [kh, kw, in, out]; ONNX wants [out, in, kh, kw].
        // Each run of `cout` values holds one (tap, input channel) position for every output.
        let taps = kernel * kernel;
        let mut folded = vec![0f32; filters.len()];
        for (position, outputs) in filters.chunks_exact(cout).enumerate() {
            let (tap, ci) = (position / cin, position % cin);
            for (co, (&w, &g)) in outputs.iter().zip(gain).enumerate() {
                folded[(co * cin + ci) * taps + tap] = w * g;
            }
        }
        let folded_bias: Vec<f32> = bias.iter().zip(gain).zip(shift).map(|((&b, &g), &t)| b * g + t).collect();

        let w = self.constant(format!("{prefix}/w"), &[cout, cin, kernel, kernel], folded);
        let b = self.constant(format!("{prefix}/b"), &[cout], folded_bias);
        let (pad, side) = match padding {
            Padding::Valid => (0, valid_side(x.side, kernel, stride)),
            Padding::Same if stride == 1 && kernel % 2 == 1 => (kernel / 2, x.side),
            Padding::Same => return Err(format!("{prefix}: 'same' padding is only written for stride 1")),
        };
        let attributes = vec![
            ints("kernel_shape", &[kernel, kernel]),
            ints("strides", &[stride, stride]),
            ints("pads", &[pad, pad, pad, pad]),
        ];
        let mut name = self.node("Conv", format!("{prefix}/conv"), vec![x.name.clone(), w, b], attributes);
        if relu {
            name = self.node("Relu", format!("{prefix}/relu"), vec![name], vec![]);
        }
        Ok(Value { name, channels: cout, side })
    }

    fn pool(&mut self, op: &str, x: &Value, name: String, kernel: usize, stride: usize) -> Value {
        let attributes = vec![ints("kernel_shape", &[kernel, kernel]), ints("strides", &[stride, stride])];
        let name = self.node(op, name, vec![x.name.clone()], attributes);
        Value { name, channels: x.channels, side: valid_side(x.side, kernel, stride) }
    }

    /// Zero padding at the end of the channel and spatial axes.
    fn pad_end(&mut self, x: &Value, name: String, channels: usize, pixels: usize) -> Value {
        let pads = ints("pads", &[0, 0, 0, 0, 0, channels, pixels, pixels]);
        let name = self.node("Pad", name, vec![x.name.clone()], vec![pads]);
        Value { name, channels: x.channels + channels, side: x.side + pixels }
    }

    fn add_relu(&mut self, a: &Value, b: &Value, prefix: &str) -> Result<Value, String> {
        if (a.channels, a.side) != (b.channels, b.side) {
            return Err(format!(
                "{prefix}: cannot add {}×{s}×{s} to {}×{t}×{t}",
                a.channels,
                b.channels,
                s = a.side,
                t = b.side
            ));
        }
        let sum = self.node("Add", format!("{prefix}/add"), vec![a.name.clone(), b.name.clone()], vec![]);
        let name = self.node("Relu", format!("{prefix}/out"), vec![sum], vec![]);
        Ok(Value { name, channels: a.channels, side: a.side })
    }

    fn residual(&mut self, x: &Value, prefix: &str) -> Result<Value, String> {
        let c = x.channels;
        let h = self.conv(x, &format!("{prefix}/conv1"), ConvSpec::same(c, true))?;
        let h = self.conv(&h, &format!("{prefix}/conv2"), ConvSpec::same(c, false))?;
        self.add_relu(&h, x, prefix)
    }

    fn residual_down(&mut self, x: &Value, prefix: &str, out_channels: usize) -> Result<Value, String> {
        let mut main = self.conv(x, &format!("{prefix}/conv1"), ConvSpec::down(out_channels))?;
        main = self.conv(&main, &format!("{prefix}/conv2"), ConvSpec::same(out_channels, false))?;

        let mut shortcut = self.pool("AveragePool", x, format!("{prefix}/shortcut"), 2, 2);
        if shortcut.channels > out_channels {
            return Err(format!("{prefix}: cannot shrink {} channels to {out_channels}", shortcut.channels));
        }
        if shortcut.channels < out_channels {
            let extra = out_channels - shortcut.channels;
            shortcut = self.pad_end(&shortcut, format!("{prefix}/shortcut_pad"), extra, 0);
        }
        match shortcut.side.checked_sub(main.side) {
            Some(0) => {}
            Some(1) => main = self.pad_end(&main, format!("{prefix}/main_pad"), 0, 1),
            _ => return Err(format!("{prefix}: branches of {} and {} pixels", main.side, shortcut.side)),
        }
        self.add_relu(&main, &shortcut, prefix)
    }

    /// Global average pool then the 256→128 projection (no bias).
    fn head(&mut self, x: &Value) -> Result<String, String> {
        let fc = self.weight("fc", &[x.channels, DESCRIPTOR_LEN])?.to_vec();
        let pooled = self.node("GlobalAveragePool", "head/pool".to_owned(), vec![x.name.clone()], vec![]);
        let flat = self.node("Flatten", "head/flatten".to_owned(), vec![pooled], vec![int("axis", 1)]);
        let fc = self.constant("fc".to_owned(), &[x.channels, DESCRIPTOR_LEN], fc);
        Ok(self.node("MatMul", OUTPUT_NAME.to_owned(), vec![flat, fc], vec![]))
    }
}

fn ints(name: &str, values: &[usize]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_owned(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: values.iter().map(|&v| v as i64).collect(),
        ..Default::default()
    }
}

fn int(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_owned(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

fn tensor_info(name: &str, dims: &[usize]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension};
    let shape = pb::TensorShapeProto {
        dim: dims
            .iter()
            .map(|&d| Dimension { value: Some(dimension::Value::DimValue(d as i64)), ..Default::default() })
            .collect(),
    };
    pb::ValueInfoProto {
        name: name.to_owned(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(shape),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Writes the whole network as an ONNX model taking `chip` [1,3,150,150] and giving `descriptor`
/// [1,128] (not yet normalised).
fn build_graph(weights: &Weights) -> Result<pb::ModelProto, String> {
    let mut g = GraphWriter { weights, nodes: Vec::new(), initializers: Vec::new() };
    let side = SIDE;
    let input = Value { name: INPUT_NAME.to_owned(), channels: 3, side };

    let x = g.conv(&input, "conv32_down", ConvSpec::STEM)?;
    let mut x = g.pool("MaxPool", &x, "pool".to_owned(), 3, 2);
    for prefix in ["conv32_1", "conv32_2", "conv32_3"] {
        x = g.residual(&x, prefix)?;
    }
    let stages: [(&str, usize, &[&str]); 4] = [
        ("conv64_down", 64, &["conv64_1", "conv64_2", "conv64_3"]),
        ("conv128_down", 128, &["conv128_1", "conv128_2"]),
        ("conv256_down", 256, &["conv256_1", "conv256_2"]),
        ("conv256_down_out", 256, &[]),
    ];
    for (down, channels, blocks) in stages {
        x = g.residual_down(&x, down, channels)?;
        for prefix in blocks {
            x = g.residual(&x, prefix)?;
        }
    }
    let output = g.head(&x)?;
    debug_assert_eq!(output, OUTPUT_NAME);

    let graph = pb::GraphProto {
        name: "dlib_resnet_face_descriptor".to_owned(),
        node: g.nodes,
        initializer: g.initializers,
        input: vec![tensor_info(INPUT_NAME, &[1, 3, side, side])],
        output: vec![tensor_info(OUTPUT_NAME, &[1, DESCRIPTOR_LEN])],
        ..Default::default()
    };
    Ok(pb::ModelProto {
        ir_version: 7,
        producer_name: env!("CARGO_PKG_NAME").to_owned(),
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: OPSET_VERSION }],
        graph: Some(graph),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::super::Embedder;
    use super::*;
    use std::path::PathBuf;
    use std::sync::OnceLock;

    /// The embedder built from the real model files, shared by the tests of this module.
    fn embedder() -> &'static Embedder {
        static EMBEDDER: OnceLock<Embedder> = OnceLock::new();
        EMBEDDER.get_or_init(|| {
            let dir = crate::models::test_models_dir();
            Embedder::load(super::super::DLIB.name, &dir).unwrap_or_else(|e| panic!("loading the embedder: {e}"))
        })
    }

    /// A fixed square of a 250×250 LFW picture, resized to a chip: a stand-in for alignment.
    ///
    /// LFW centres the face with the eyes near y = 114 and about 42 px apart; the dlib chip puts
    /// them at y = 47 of 150 and 52.6 px apart, hence a 120 px square from (65, 76).
    fn lfw_chip(person: &str, index: u32) -> image::RgbImage {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/facedata/lfw10")
            .join(person)
            .join(format!("{person}_{index:04}.jpg"));
        let picture = image::open(&path).unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display())).to_rgb8();
        let crop = image::imageops::crop_imm(&picture, 65, 76, 120, 120).to_image();
        image::imageops::resize(&crop, SIDE as u32, SIDE as u32, image::imageops::FilterType::Triangle)
    }

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn descriptor_is_unit_length_and_deterministic() {
        let chip = lfw_chip("Colin_Powell", 1);
        let first = embedder().embed(&chip).unwrap();
        let second = embedder().embed(&chip).unwrap();
        assert_eq!(first.len(), DESCRIPTOR_LEN);
        let norm = first.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
        assert!(first.iter().all(|v| v.is_finite()));
        assert_eq!(first, second);
    }

    #[test]
    fn same_person_scores_above_different_people() {
        let people = ["Colin_Powell", "George_W_Bush", "Hugo_Chavez", "Tony_Blair"];
        let descriptors: Vec<(usize, Vec<f32>)> = people
            .iter()
            .enumerate()
            .flat_map(|(p, person)| (1..=4).map(move |i| (p, lfw_chip(person, i))))
            .map(|(p, chip)| (p, embedder().embed(&chip).unwrap()))
            .collect();
        let (mut same, mut different) = (Vec::new(), Vec::new());
        for (i, (pa, a)) in descriptors.iter().enumerate() {
            for (pb, b) in &descriptors[i + 1..] {
                let bucket = if pa == pb { &mut same } else { &mut different };
                bucket.push(cosine(a, b));
            }
        }
        let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
        let (same_mean, different_mean) = (mean(&same), mean(&different));
        println!(
            "mean cosine: same person {same_mean:.4} over {} pairs, different people {different_mean:.4} over {} pairs",
            same.len(),
            different.len()
        );
        assert!(same_mean > different_mean + 0.05, "same {same_mean} vs different {different_mean}");
    }

    fn write_model_files(dir: &Path, manifest: &str, weights: &[u8]) -> (PathBuf, PathBuf) {
        let manifest_path = dir.join("manifest.json");
        let weights_path = dir.join("weights.bin");
        std::fs::write(&manifest_path, manifest).unwrap();
        std::fs::write(&weights_path, weights).unwrap();
        (manifest_path, weights_path)
    }

    const TINY_MANIFEST: &str = r#"[{"paths": ["weights.bin"], "weights": [
        {"name": "q", "shape": [3], "dtype": "float32",
         "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}},
        {"name": "f", "shape": [1], "dtype": "float32"}
    ]}]"#;

    #[test]
    fn weights_are_dequantised_in_manifest_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = vec![0u8, 2, 255];
        bytes.extend_from_slice(&1.25f32.to_le_bytes());
        let (manifest, weights) = write_model_files(dir.path(), TINY_MANIFEST, &bytes);
        let tensors = read_weights(&manifest, &weights).unwrap();
        assert_eq!(tensors["q"].values, [-1.0, 0.0, 126.5]);
        assert_eq!(tensors["f"].values, [1.25]);
        assert_eq!(tensors["q"].shape, [3]);
    }

    #[test]
    fn weights_file_of_the_wrong_size_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (manifest, weights) = write_model_files(dir.path(), TINY_MANIFEST, &[0; 6]);
        let err = read_weights(&manifest, &weights).unwrap_err();
        assert!(matches!(err, EmbedderError::WeightsSize { expected: 7, actual: 6, .. }), "{err}");
    }

    #[test]
    fn missing_files_name_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("face_recognition_model.bin");
        let (manifest, _) = write_model_files(dir.path(), TINY_MANIFEST, &[]);
        let message = Dlib::load(&manifest, &missing).err().expect("the weights are missing").to_string();
        assert!(message.contains("face_recognition_model.bin"), "{message}");
        assert!(message.contains("facereko models fetch"), "{message}");
    }

    #[test]
    fn malformed_manifest_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (manifest, weights) = write_model_files(dir.path(), r#"{"weights": 3}"#, &[]);
        let err = read_weights(&manifest, &weights).unwrap_err();
        assert!(matches!(err, EmbedderError::Manifest { .. }), "{err}");
    }
}
