// Fuzz cases that fail on main today in areas being fixed in other branches of the hardening issue (#18).
// The suite records them as known issues; when an area's fix is merged, delete its group: a listed case that
// passes is reported ("passes now: remove it"), so the list cannot go stale.
enum FuzzKnownIssues {
    enum Area: String, Sendable {
        /// safetensors exactness, non-regular files, NaN/Inf weights, HDF5 goldens and `compare` (item 2).
        case formats
        /// config.json, preprocessor_config.json and tokenizer.json validation (items 3 and 5).
        case configs
        /// dataset.json and the dataset's PNG files (item 6).
        case data

        var owner: String {
            switch self {
            case .formats: "safetensors/HDF5/compare hardening, branch formats"
            case .configs: "config/preprocessor/tokenizer validation, branch configs"
            case .data: "dataset and dataset image reading, branch data"
            }
        }
    }

    static func area(of id: String) -> Area? { cases[id] }

    static let cases: [String: Area] = [
        // formats: bytes between header and data, a header length 4 short or trailing slack accepted (wrong
        // success); NaN/Inf weights and a garbled header length reported by hook, not by tensor and file; LLaVA
        // tensors named by their converted key, not as in the file; a named pipe read forever; compare errors
        // without the golden file's path.
        "hdf5/llama/fifo": .formats,  // timeout
        "hdf5/llama/model_id-other": .formats,  // no name
        "hdf5/llama/model_id-parent": .formats,  // no name
        "hdf5/llava/model_id-other": .formats,  // no name
        "hdf5/llava/model_id-parent": .formats,  // no name
        "safetensors/llama/append-4-bytes": .formats,  // wrong success
        "safetensors/llama/append-4096-bytes": .formats,  // wrong success
        "safetensors/llama/fifo": .formats,  // timeout
        "safetensors/llama/header-length-1": .formats,  // no name
        "safetensors/llama/header-length-4": .formats,  // wrong success
        "safetensors/llama/insert-4-bytes-after-header": .formats,  // wrong success
        "safetensors/llama/insert-64-bytes-after-header": .formats,  // wrong success
        "safetensors/llama/weight=-inf": .formats,  // no name
        "safetensors/llama/weight=inf": .formats,  // no name
        "safetensors/llama/weight=nan": .formats,  // no name
        "safetensors/llava/append-4-bytes": .formats,  // wrong success
        "safetensors/llava/append-4096-bytes": .formats,  // wrong success
        "safetensors/llava/header-length-1": .formats,  // no name
        "safetensors/llava/header-length-4": .formats,  // wrong success
        "safetensors/llava/insert-4-bytes-after-header": .formats,  // wrong success
        "safetensors/llava/insert-64-bytes-after-header": .formats,  // wrong success
        "safetensors/llava/shape=flattened": .formats,  // no name
        "safetensors/llava/shape=leading-1": .formats,  // no name
        "safetensors/llava/shape=swapped": .formats,  // no name
        "safetensors/llava/weight=-inf": .formats,  // no name
        "safetensors/llava/weight=inf": .formats,  // no name
        "safetensors/llava/weight=nan": .formats,  // no name
        "safetensors/qwen2vl/append-4-bytes": .formats,  // wrong success
        "safetensors/qwen2vl/append-4096-bytes": .formats,  // wrong success
        "safetensors/qwen2vl/header-length-1": .formats,  // no name
        "safetensors/qwen2vl/insert-4-bytes-after-header": .formats,  // wrong success
        "safetensors/qwen2vl/insert-64-bytes-after-header": .formats,  // wrong success
        "safetensors/qwen2vl/weight=-inf": .formats,  // no name
        "safetensors/qwen2vl/weight=inf": .formats,  // no name
        "safetensors/qwen2vl/weight=nan": .formats,  // no name
        // configs: sizes of 2^63-1 or 1e9 layers and negative or wrapping mrope_section crash (signal); fields
        // given as fractions read as "not valid JSON"; 1e9 sizes reported as a memory estimate without the field;
        // fields named by internal names (image_token_id, width, output size); missing or invalid rope
        // parameters, vision_start_token_id, text model_type and negative eps accepted; preprocessor/model
        // disagreements and tokenizer ids, added tokens and truncation not checked or not naming the file; a
        // nested-quantifier Split regex runs past the time limit.
        "config/llama/head_dim=beyond-int64": .configs,  // no name
        "config/llama/head_dim=fraction": .configs,  // no name
        "config/llama/head_dim=int64-max": .configs,  // signal
        "config/llama/hidden_size=1e9": .configs,  // no name
        "config/llama/hidden_size=beyond-int64": .configs,  // no name
        "config/llama/hidden_size=fraction": .configs,  // no name
        "config/llama/hidden_size=int64-max": .configs,  // signal
        "config/llama/intermediate_size=1e9": .configs,  // no name
        "config/llama/intermediate_size=beyond-int64": .configs,  // no name
        "config/llama/intermediate_size=fraction": .configs,  // no name
        "config/llama/intermediate_size=int64-max": .configs,  // signal
        "config/llama/max_position_embeddings=beyond-int64": .configs,  // no name
        "config/llama/max_position_embeddings=fraction": .configs,  // no name
        "config/llama/num_attention_heads=1e9": .configs,  // no name
        "config/llama/num_attention_heads=beyond-int64": .configs,  // no name
        "config/llama/num_attention_heads=fraction": .configs,  // no name
        "config/llama/num_attention_heads=missing": .configs,  // no name
        "config/llama/num_attention_heads=null": .configs,  // no name
        "config/llama/num_hidden_layers=beyond-int64": .configs,  // no name
        "config/llama/num_hidden_layers=fraction": .configs,  // no name
        "config/llama/num_key_value_heads=beyond-int64": .configs,  // no name
        "config/llama/num_key_value_heads=fraction": .configs,  // no name
        "config/llama/rms_norm_eps=1e400": .configs,  // no name
        "config/llama/rms_norm_eps=NaN": .configs,  // no name
        "config/llama/rope=linear-factor-missing": .configs,  // wrong success
        "config/llama/rope=llama3-factor-missing": .configs,  // wrong success
        "config/llama/rope=llama3-high<low": .configs,  // wrong success
        "config/llama/rope=llama3-high_freq_factor-missing": .configs,  // wrong success
        "config/llama/rope=llama3-high_freq_factor=0": .configs,  // wrong success
        "config/llama/rope=llama3-high_freq_factor=negative": .configs,  // wrong success
        "config/llama/rope=llama3-low_freq_factor-missing": .configs,  // wrong success
        "config/llama/rope=llama3-low_freq_factor=0": .configs,  // wrong success
        "config/llama/rope=llama3-low_freq_factor=negative": .configs,  // wrong success
        "config/llama/rope=llama3-original_max_position_embeddings-missing": .configs,  // wrong success
        "config/llama/rope=llama3-original_max_position_embeddings=0": .configs,  // wrong success
        "config/llama/rope=llama3-original_max_position_embeddings=fraction": .configs,  // no name
        "config/llama/rope=llama3-original_max_position_embeddings=negative": .configs,  // wrong success
        "config/llama/rope_parameters.rope_theta=1e400": .configs,  // no name
        "config/llama/rope_parameters.rope_theta=NaN": .configs,  // no name
        "config/llama/vocab_size=1e9": .configs,  // no name
        "config/llama/vocab_size=beyond-int64": .configs,  // no name
        "config/llama/vocab_size=fraction": .configs,  // no name
        "config/llama/vocab_size=int64-max": .configs,  // signal
        "config/llava/image_token_index=-1": .configs,  // no name
        "config/llava/image_token_index=fraction": .configs,  // no name
        "config/llava/image_token_index=int64-max": .configs,  // no name
        "config/llava/image_token_index=missing": .configs,  // no name
        "config/llava/image_token_index=other-id": .configs,  // no name
        "config/llava/image_token_index=vocab-size": .configs,  // no name
        "config/llava/rope=linear-factor-missing": .configs,  // wrong success
        "config/llava/rope=llama3-factor-missing": .configs,  // wrong success
        "config/llava/rope=llama3-high<low": .configs,  // wrong success
        "config/llava/rope=llama3-high_freq_factor-missing": .configs,  // wrong success
        "config/llava/rope=llama3-high_freq_factor=0": .configs,  // wrong success
        "config/llava/rope=llama3-high_freq_factor=negative": .configs,  // wrong success
        "config/llava/rope=llama3-low_freq_factor-missing": .configs,  // wrong success
        "config/llava/rope=llama3-low_freq_factor=0": .configs,  // wrong success
        "config/llava/rope=llama3-low_freq_factor=negative": .configs,  // wrong success
        "config/llava/rope=llama3-original_max_position_embeddings-missing": .configs,  // wrong success
        "config/llava/rope=llama3-original_max_position_embeddings=0": .configs,  // wrong success
        "config/llava/rope=llama3-original_max_position_embeddings=fraction": .configs,  // no name
        "config/llava/rope=llama3-original_max_position_embeddings=negative": .configs,  // wrong success
        "config/llava/text_config.hidden_size=1e9": .configs,  // no name
        "config/llava/text_config.intermediate_size=int64-max": .configs,  // signal
        "config/llava/text_config.max_position_embeddings=fraction": .configs,  // no name
        "config/llava/text_config.model_type=unknown": .configs,  // wrong success
        "config/llava/text_config.num_attention_heads=missing": .configs,  // no name
        "config/llava/text_config.num_attention_heads=null": .configs,  // no name
        "config/llava/text_config.num_hidden_layers=beyond-int64": .configs,  // no name
        "config/llava/text_config.vocab_size=int64-max": .configs,  // signal
        "config/llava/vision_config.hidden_size=beyond-int64": .configs,  // no name
        "config/llava/vision_config.hidden_size=fraction": .configs,  // no name
        "config/llava/vision_config.image_size=beyond-int64": .configs,  // no name
        "config/llava/vision_config.image_size=fraction": .configs,  // no name
        "config/llava/vision_config.intermediate_size=beyond-int64": .configs,  // no name
        "config/llava/vision_config.intermediate_size=fraction": .configs,  // no name
        "config/llava/vision_config.layer_norm_eps=1e400": .configs,  // no name
        "config/llava/vision_config.layer_norm_eps=NaN": .configs,  // no name
        "config/llava/vision_config.layer_norm_eps=negative": .configs,  // wrong success
        "config/llava/vision_config.num_attention_heads=beyond-int64": .configs,  // no name
        "config/llava/vision_config.num_attention_heads=fraction": .configs,  // no name
        "config/llava/vision_config.num_channels=beyond-int64": .configs,  // no name
        "config/llava/vision_config.num_channels=fraction": .configs,  // no name
        "config/llava/vision_config.num_hidden_layers=1e9": .configs,  // signal
        "config/llava/vision_config.num_hidden_layers=beyond-int64": .configs,  // no name
        "config/llava/vision_config.num_hidden_layers=fraction": .configs,  // no name
        "config/llava/vision_config.num_hidden_layers=int64-max": .configs,  // signal
        "config/llava/vision_config.patch_size=beyond-int64": .configs,  // no name
        "config/llava/vision_config.patch_size=fraction": .configs,  // no name
        "config/llava/vision_feature_layer=fraction": .configs,  // no name
        "config/qwen2vl/image_token_id=fraction": .configs,  // no name
        "config/qwen2vl/image_token_id=other-id": .configs,  // no name
        "config/qwen2vl/mrope_section=four-entries": .configs,  // signal
        "config/qwen2vl/mrope_section=fractions": .configs,  // no name
        "config/qwen2vl/mrope_section=negative": .configs,  // signal
        "config/qwen2vl/mrope_section=overflow-wraps": .configs,  // signal
        "config/qwen2vl/text_config.intermediate_size=fraction": .configs,  // no name
        "config/qwen2vl/text_config.model_type=unknown": .configs,  // wrong success
        "config/qwen2vl/text_config.num_attention_heads=1e9": .configs,  // no name
        "config/qwen2vl/text_config.num_attention_heads=beyond-int64": .configs,  // no name
        "config/qwen2vl/text_config.num_attention_heads=fraction": .configs,  // no name
        "config/qwen2vl/text_config.num_key_value_heads=beyond-int64": .configs,  // no name
        "config/qwen2vl/text_config.rope_parameters.rope_theta=NaN": .configs,  // no name
        "config/qwen2vl/text_config.vocab_size=beyond-int64": .configs,  // no name
        "config/qwen2vl/vision_config.depth=-1": .configs,  // signal
        "config/qwen2vl/vision_config.depth=1e9": .configs,  // signal
        "config/qwen2vl/vision_config.depth=beyond-int64": .configs,  // no name
        "config/qwen2vl/vision_config.depth=fraction": .configs,  // no name
        "config/qwen2vl/vision_config.depth=int64-max": .configs,  // signal
        "config/qwen2vl/vision_config.embed_dim=-1": .configs,  // no name
        "config/qwen2vl/vision_config.embed_dim=0": .configs,  // no name
        "config/qwen2vl/vision_config.embed_dim=beyond-int64": .configs,  // no name
        "config/qwen2vl/vision_config.embed_dim=fraction": .configs,  // no name
        "config/qwen2vl/vision_config.embed_dim=int64-max": .configs,  // signal
        "config/qwen2vl/vision_config.embed_dim=minus-1": .configs,  // no name
        "config/qwen2vl/vision_config.embed_dim=plus-1": .configs,  // no name
        "config/qwen2vl/vision_config.hidden_size=-1": .configs,  // no name
        "config/qwen2vl/vision_config.hidden_size=0": .configs,  // no name
        "config/qwen2vl/vision_config.hidden_size=beyond-int64": .configs,  // no name
        "config/qwen2vl/vision_config.hidden_size=fraction": .configs,  // no name
        "config/qwen2vl/vision_config.in_channels=beyond-int64": .configs,  // no name
        "config/qwen2vl/vision_config.in_channels=fraction": .configs,  // no name
        "config/qwen2vl/vision_config.mlp_ratio=-1": .configs,  // no name
        "config/qwen2vl/vision_config.mlp_ratio=0": .configs,  // no name
        "config/qwen2vl/vision_config.mlp_ratio=beyond-int64": .configs,  // signal
        "config/qwen2vl/vision_config.mlp_ratio=int64-max": .configs,  // signal
        "config/qwen2vl/vision_config.num_heads=beyond-int64": .configs,  // no name
        "config/qwen2vl/vision_config.num_heads=fraction": .configs,  // no name
        "config/qwen2vl/vision_config.num_heads=missing": .configs,  // no name
        "config/qwen2vl/vision_config.num_heads=null": .configs,  // no name
        "config/qwen2vl/vision_config.patch_size=beyond-int64": .configs,  // no name
        "config/qwen2vl/vision_config.patch_size=fraction": .configs,  // no name
        "config/qwen2vl/vision_config.spatial_merge_size=1e9": .configs,  // signal
        "config/qwen2vl/vision_config.spatial_merge_size=beyond-int64": .configs,  // no name
        "config/qwen2vl/vision_config.spatial_merge_size=fraction": .configs,  // no name
        "config/qwen2vl/vision_config.spatial_merge_size=int64-max": .configs,  // signal
        "config/qwen2vl/vision_config.temporal_patch_size=beyond-int64": .configs,  // no name
        "config/qwen2vl/vision_config.temporal_patch_size=fraction": .configs,  // no name
        "config/qwen2vl/vision_start_token_id=-1": .configs,  // wrong success
        "config/qwen2vl/vision_start_token_id=fraction": .configs,  // no name
        "config/qwen2vl/vision_start_token_id=int64-max": .configs,  // wrong success
        "config/qwen2vl/vision_start_token_id=vocab-size": .configs,  // wrong success
        "preprocessor/llava/crop_size.height=16": .configs,  // no name
        "preprocessor/llava/crop_size.height=1e9": .configs,  // no name
        "preprocessor/llava/crop_size.height=fraction": .configs,  // no name
        "preprocessor/llava/crop_size.height=int64-max": .configs,  // no name
        "preprocessor/llava/crop_size.width=1e9": .configs,  // no name
        "preprocessor/llava/crop_size.width=fraction": .configs,  // no name
        "preprocessor/llava/crop_size.width=int64-max": .configs,  // no name
        "preprocessor/llava/do_center_crop=false": .configs,  // no name
        "preprocessor/llava/image_mean=1e400": .configs,  // no name
        "preprocessor/llava/image_std=1e400": .configs,  // no name
        "preprocessor/llava/size.shortest_edge=fraction": .configs,  // no name
        "preprocessor/qwen2vl/image_mean=1e400": .configs,  // no name
        "preprocessor/qwen2vl/image_std=1e400": .configs,  // no name
        "preprocessor/qwen2vl/max_pixels=fraction": .configs,  // no name
        "preprocessor/qwen2vl/merge_size=3": .configs,  // no name
        "preprocessor/qwen2vl/merge_size=fraction": .configs,  // no name
        "preprocessor/qwen2vl/min_pixels=fraction": .configs,  // no name
        "preprocessor/qwen2vl/patch_size=8": .configs,  // no name
        "preprocessor/qwen2vl/patch_size=fraction": .configs,  // no name
        "preprocessor/qwen2vl/patch_size=missing": .configs,  // no name
        "preprocessor/qwen2vl/temporal_patch_size=fraction": .configs,  // no name
        "tokenizer/llava/added_tokens=duplicate-id": .configs,  // wrong success
        "tokenizer/llava/added_tokens=empty-content": .configs,  // wrong success
        "tokenizer/llava/added_tokens=id-beyond-model": .configs,  // wrong success
        "tokenizer/llava/added_tokens=image-token-other-id": .configs,  // no name
        "tokenizer/llava/model.vocab=id-beyond-model": .configs,  // wrong success
        "tokenizer/llava/pre_tokenizer=split-nested-quantifiers": .configs,  // timeout
        "tokenizer/llava/truncation=max-length-negative": .configs,  // wrong success
        "tokenizer/llava/truncation=string": .configs,  // wrong success
        "tokenizer/qwen2vl/added_tokens=duplicate-id": .configs,  // wrong success
        "tokenizer/qwen2vl/added_tokens=empty-content": .configs,  // wrong success
        "tokenizer/qwen2vl/added_tokens=id-beyond-model": .configs,  // wrong success
        "tokenizer/qwen2vl/added_tokens=image-token-other-id": .configs,  // no name
        "tokenizer/qwen2vl/model.vocab=id-beyond-model": .configs,  // wrong success
        "tokenizer/qwen2vl/pre_tokenizer=split-nested-quantifiers": .configs,  // timeout
        "tokenizer/qwen2vl/truncation=max-length-negative": .configs,  // wrong success
        "tokenizer/qwen2vl/truncation=string": .configs,  // wrong success
        // data: dataset PNGs never read (text, empty, truncated, huge, bad CRC, pipe, symlink out of the folder
        // all pass), a 1 MB question passes `data check`, `eval` on no items exits 0, over-long fields reported
        // without the file and item.
        "dataset/check/image-crc": .data,  // wrong success
        "dataset/check/image-empty": .data,  // wrong success
        "dataset/check/image-fifo": .data,  // wrong success
        "dataset/check/image-huge-ihdr": .data,  // wrong success
        "dataset/check/image-symlink-outside": .data,  // wrong success
        "dataset/check/image-text-file": .data,  // wrong success
        "dataset/check/image-truncated": .data,  // wrong success
        "dataset/check/item-question-1MB": .data,  // wrong success
        "dataset/eval/image-crc": .data,  // wrong success
        "dataset/eval/image-empty": .data,  // wrong success
        "dataset/eval/image-fifo": .data,  // wrong success
        "dataset/eval/image-huge-ihdr": .data,  // wrong success
        "dataset/eval/image-symlink-outside": .data,  // wrong success
        "dataset/eval/image-text-file": .data,  // wrong success
        "dataset/eval/image-truncated": .data,  // wrong success
        "dataset/eval/item-context-100KB": .data,  // no name
        "dataset/eval/item-question-1MB": .data,  // no name
        "dataset/eval/items-empty": .data,  // wrong success
    ]
}
