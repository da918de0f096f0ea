// The Qwen2-VL vision block: LayerNorm → full attention → LayerNorm → fc1 → activation (quick_gelu) → fc2.
// Mirrors transformers/models/qwen2_vl/modeling_qwen2_vl.py (VisionMlp, Qwen2VLVisionBlock), eager attention,
// Float32.
import ArbiterFormats
import ArbiterTensor
import Foundation

/// LayerNorm → full attention → LayerNorm → fc1 → activation → fc2.
typealias Qwen2VisionBlock = HookedBlock<QwenVisionAttention, FeedForwardMLP>

extension HookedBlock where Attention == QwenVisionAttention, MLP == FeedForwardMLP {
    init(_ w: inout WeightStore, prefix p: String, config c: QwenVisionConfiguration) throws {
        let norm1 = try BlockNorm.layer(&w, "\(p).norm1", width: c.width, eps: 1e-6)
        let norm2 = try BlockNorm.layer(&w, "\(p).norm2", width: c.width, eps: 1e-6)
        self.init(norm1: norm1, attention: try QwenVisionAttention(&w, prefix: "\(p).attn", config: c), norm2: norm2,
                  mlp: try FeedForwardMLP(&w, prefix: "\(p).mlp", width: c.width, intermediate: c.intermediateSize,
                                          activation: c.hiddenAct),
                  hooksNorms: true)
    }
}
