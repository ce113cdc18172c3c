//! MobileFaceNet (sirius-ai's design, trained on MS1M-derived data) as shipped in a TFLite file.
//!
//! The file hard-codes a batch of two chips. A door describes one face at a time, so before tract
//! reads the file, [`single_batch`] rewrites the two places that say "two" (the input's batch
//! dimension and the shape the final reshape produces) to one: half the work per face.

use std::path::Path;

use image::RgbImage;
use tract_tflite::prelude::*;
use tract_tflite::tflite::{self as schema, BuiltinOperator};

use super::{EmbedderError, Network, prelu};
use crate::engine::local::depthwise;

/// Side of the aligned chip the network takes.
const SIDE: usize = 112;

pub struct MobileFaceNet {
    plan: Arc<TypedRunnableModel>,
}

impl MobileFaceNet {
    pub fn load(path: &Path) -> Result<Self, EmbedderError> {
        let mut bytes =
            std::fs::read(path).map_err(|source| EmbedderError::Unreadable { path: path.to_owned(), source })?;
        single_batch(&mut bytes).map_err(|detail| EmbedderError::Model { path: path.to_owned(), detail })?;
        let mut model = tract_tflite::tflite().model_for_read(&mut bytes.as_slice())?.into_decluttered()?;
        prelu::fuse(&mut model)?;
        Ok(Self { plan: depthwise::into_optimized(model)?.into_runnable()? })
    }
}

impl Network for MobileFaceNet {
    fn describe(&self, chip: &RgbImage) -> Result<Vec<f32>, EmbedderError> {
        // NHWC, RGB scaled to about −1..1.
        let values: Vec<f32> = chip.as_raw().iter().map(|&v| (f32::from(v) - 127.5) / 128.0).collect();
        let input = Tensor::from_shape(&[1, SIDE, SIDE, 3], &values)?;
        let outputs = self.plan.run(tvec!(input.into_tvalue()))?;
        Ok(outputs[0].to_plain_array_view::<f32>()?.iter().copied().collect())
    }
}

/// Where in the file a little-endian `i32` that must become 1 sits.
fn offset_in(file: &[u8], value: &[u8]) -> usize {
    value.as_ptr() as usize - file.as_ptr() as usize
}

/// Rewrites a model with a fixed batch of two into one with a batch of one: the first dimension
/// of the graph's input, and the first value of every constant reshape target.
fn single_batch(file: &mut [u8]) -> Result<(), String> {
    let mut twos = Vec::new();
    {
        let model = schema::root_as_model(file).map_err(|e| format!("not a TFLite model: {e}"))?;
        let graph = model.subgraphs().and_then(|g| g.iter().next()).ok_or("the model has no graph")?;
        let tensors = graph.tensors().ok_or("the graph has no tensors")?;
        let buffers = model.buffers().ok_or("the model has no buffers")?;
        let codes = model.operator_codes().ok_or("the model has no operator codes")?;
        let input = graph.inputs().and_then(|i| i.iter().next()).ok_or("the graph has no input")?;
        let shape = tensors.get(input as usize).shape().ok_or("the input has no shape")?;
        if shape.len() != 4 || shape.get(0) != 2 {
            return Err(format!(
                "expected an input of two chips, found the shape {:?}",
                shape.iter().collect::<Vec<_>>()
            ));
        }
        twos.push(offset_in(file, shape.bytes()));
        for op in graph.operators().iter().flatten() {
            let code = codes.get(op.opcode_index() as usize);
            let builtin = code.builtin_code().max(BuiltinOperator(i32::from(code.deprecated_builtin_code())));
            if builtin != BuiltinOperator::RESHAPE {
                continue;
            }
            let Some(target) = op.inputs().and_then(|inputs| inputs.iter().nth(1)) else { continue };
            let buffer = buffers.get(tensors.get(target as usize).buffer() as usize);
            if let Some(data) = buffer.data().filter(|d| d.len() >= 4 && d.bytes()[..4] == 2i32.to_le_bytes()) {
                twos.push(offset_in(file, data.bytes()));
            }
        }
    }
    if twos.len() < 2 {
        return Err("no reshape to a batch of two was found".into());
    }
    for at in twos {
        file[at..at + 4].copy_from_slice(&1i32.to_le_bytes());
    }
    Ok(())
}
