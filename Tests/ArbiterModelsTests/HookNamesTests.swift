// Pins the ordered list of hook names (TransformerLens vocabulary) and checks runs visit them in that order.
import ArbiterFormats
import ArbiterModels
import ArbiterTensor
import Testing

@Suite("Hook names")
struct HookNamesTests {
    /// The full ordered list for tiny-llama (3 layers). A change here is a change of the public hook API.
    static let tinyLlamaHookNames = [
        "hook_embed",
        "blocks.0.hook_resid_pre",
        "blocks.0.ln1.hook_normalized",
        "blocks.0.attn.hook_q",
        "blocks.0.attn.hook_k",
        "blocks.0.attn.hook_v",
        "blocks.0.attn.hook_rot_q",
        "blocks.0.attn.hook_rot_k",
        "blocks.0.attn.hook_attn_scores",
        "blocks.0.attn.hook_pattern",
        "blocks.0.attn.hook_z",
        "blocks.0.attn.hook_result",
        "blocks.0.hook_attn_out",
        "blocks.0.hook_resid_mid",
        "blocks.0.ln2.hook_normalized",
        "blocks.0.mlp.hook_pre",
        "blocks.0.mlp.hook_pre_linear",
        "blocks.0.mlp.hook_post",
        "blocks.0.hook_mlp_out",
        "blocks.0.hook_resid_post",
        "blocks.1.hook_resid_pre",
        "blocks.1.ln1.hook_normalized",
        "blocks.1.attn.hook_q",
        "blocks.1.attn.hook_k",
        "blocks.1.attn.hook_v",
        "blocks.1.attn.hook_rot_q",
        "blocks.1.attn.hook_rot_k",
        "blocks.1.attn.hook_attn_scores",
        "blocks.1.attn.hook_pattern",
        "blocks.1.attn.hook_z",
        "blocks.1.attn.hook_result",
        "blocks.1.hook_attn_out",
        "blocks.1.hook_resid_mid",
        "blocks.1.ln2.hook_normalized",
        "blocks.1.mlp.hook_pre",
        "blocks.1.mlp.hook_pre_linear",
        "blocks.1.mlp.hook_post",
        "blocks.1.hook_mlp_out",
        "blocks.1.hook_resid_post",
        "blocks.2.hook_resid_pre",
        "blocks.2.ln1.hook_normalized",
        "blocks.2.attn.hook_q",
        "blocks.2.attn.hook_k",
        "blocks.2.attn.hook_v",
        "blocks.2.attn.hook_rot_q",
        "blocks.2.attn.hook_rot_k",
        "blocks.2.attn.hook_attn_scores",
        "blocks.2.attn.hook_pattern",
        "blocks.2.attn.hook_z",
        "blocks.2.attn.hook_result",
        "blocks.2.hook_attn_out",
        "blocks.2.hook_resid_mid",
        "blocks.2.ln2.hook_normalized",
        "blocks.2.mlp.hook_pre",
        "blocks.2.mlp.hook_pre_linear",
        "blocks.2.mlp.hook_post",
        "blocks.2.hook_mlp_out",
        "blocks.2.hook_resid_post",
        "ln_final.hook_normalized",
        "hook_logits",
    ]

    @Test("tiny-llama's hook names, in forward order")
    func pinnedList() throws {
        let model = try ModelRegistry.load(Repository.model("tiny-llama"))
        #expect(model.hookNames == Self.tinyLlamaHookNames)
    }

    @Test("typed names (HookName, BlockHook) spell the pinned list: every block hook in order, and the rest")
    func typedNames() throws {
        let layers = 3
        let typed = [HookName.embed]
            + (0..<layers).flatMap { l in BlockHook.allCases.map { HookName.block(l, $0) } }
            + [HookName.finalNorm, HookName.logits]
        #expect(typed == Self.tinyLlamaHookNames)
        #expect(HookName.block(2, .pattern, prefix: "vision.") == "vision.blocks.2.attn.hook_pattern")
        #expect(Self.tinyLlamaHookNames.filter { wildcardMatch(pattern: HookName.everyBlock(.z), $0) }
                == (0..<layers).map { "blocks.\($0).attn.hook_z" })
    }

    @Test("a run caching everything visits every hook once, in the declared order")
    func visitOrder() throws {
        let model = try ModelRegistry.load(Repository.model("tiny-llama"))
        let hooks = HookRun(cache: .all)
        hooks.recordsVisits = true
        _ = try model.decoder.forward(ids: [5, 6, 7, 8], hooks: hooks)
        #expect(hooks.visited == model.hookNames)
        #expect(Set(hooks.cache.keys) == Set(model.hookNames))
    }

    @Test("every bundled model, vision tower included: a run caching everything visits its hook names in order",
          arguments: ["tiny-llava", "tiny-llava-hub", "tiny-qwen2-vl", "tiny-qwen2_5-vl", "tiny-qwen3-vl",
                      "tiny-internvl", "tiny-internvl-rms", "arbiter-main"])
    func visitOrderWithImages(_ name: String) throws {
        let folder = Repository.model(name)
        let session = try ModelSession(directory: folder)
        let image = session.imageSize.map { RGBImage(width: $0, height: $0, red: 200, green: 30, blue: 90) }
        let input = try session.prepare(PromptFields(question: "What color is it?"), image: image)
        let hooks = HookRun(cache: .all)
        hooks.recordsVisits = true
        _ = try session.model.forward(ids: input.ids, image: input.image, logits: .all, hooks: hooks)
        let names = session.model.hookNames
        let firstDifference = zip(hooks.visited, names).enumerated().first { $0.element.0 != $0.element.1 }
        #expect(hooks.visited == names, "\(name): first difference \(String(describing: firstDifference))")
        #expect(Set(hooks.cache.keys) == Set(names))
        // The block hooks come from the one declaration: each decoder block visits every BlockHook (and, in a model
        // with residual additions, its hook_deepstack).
        let additions = session.model.decoder.additionLayers > 0 ? ["blocks.0.hook_deepstack"] : []
        #expect(names.filter { $0.hasPrefix("blocks.0.") }
                == BlockHook.allCases.map { HookName.block(0, $0) } + additions)
    }

    /// Vision blocks 0 and 2 feed the DeepStack mergers; decoder layers 0 and 1 get their features.
    @Test("tiny-qwen3-vl's hook names: position embeddings, DeepStack mergers, hook_deepstack")
    func qwen3VLNames() throws {
        let model = try ModelRegistry.load(Repository.model("tiny-qwen3-vl"))
        let visionBlock: [BlockHook] = [.residPre, .ln1, .q, .k, .v, .rotQ, .rotK, .attnScores, .pattern, .z, .attnOut,
                                        .residMid, .ln2, .mlpPre, .mlpPost, .mlpOut, .residPost]
        func deepstack(_ i: Int) -> [String] {
            ["norm.hook_normalized", "hook_pre", "hook_features"].map { "vision.deepstack.\(i).\($0)" }
        }
        let vision = (0..<4).flatMap { l in
            visionBlock.map { HookName.block(l, $0, prefix: "vision.") }
                + (l == 0 ? deepstack(0) : l == 2 ? deepstack(1) : [])
        }
        let decoder = (0..<4).flatMap { l in
            BlockHook.allCases.map { HookName.block(l, $0) } + (l < 2 ? ["blocks.\(l).hook_deepstack"] : [])
        }
        let expected = ["vision.hook_embed", "vision.hook_pos_embed"] + vision
            + ["vision.merger.norm.hook_normalized", "vision.merger.hook_pre", HookName.imageFeatures, HookName.embed]
            + decoder + [HookName.finalNorm, HookName.logits]
        #expect(model.hookNames == expected)
    }

    @Test("documented shapes of the cached activations")
    func shapes() throws {
        let model = try ModelRegistry.load(Repository.model("tiny-llama"))
        let hooks = HookRun(cache: .all)
        _ = try model.decoder.forward(ids: [5, 6, 7, 8, 9], hooks: hooks)
        let c = model.decoder.configuration
        let t = 5, d = c.hiddenSize, h = c.attentionHeads, kv = c.keyValueHeads, hd = c.headDim, m = c.intermediateSize
        let expected: [String: [Int]] = [
            "hook_embed": [t, d], "blocks.1.hook_resid_pre": [t, d], "blocks.1.attn.hook_q": [t, h, hd],
            "blocks.1.attn.hook_k": [t, kv, hd], "blocks.1.attn.hook_v": [t, kv, hd], "blocks.1.attn.hook_rot_q": [t, h, hd],
            "blocks.1.attn.hook_attn_scores": [h, t, t], "blocks.1.attn.hook_pattern": [h, t, t],
            "blocks.1.attn.hook_z": [t, h, hd], "blocks.1.attn.hook_result": [t, h, d], "blocks.1.hook_attn_out": [t, d],
            "blocks.1.mlp.hook_pre": [t, m], "blocks.1.mlp.hook_post": [t, m], "blocks.1.hook_mlp_out": [t, d],
            "ln_final.hook_normalized": [t, d], "hook_logits": [t, c.vocabularySize],
        ]
        for (name, shape) in expected {
            #expect(hooks.cache[name]?.shape == shape, "\(name): \(String(describing: hooks.cache[name]?.shape)) vs \(shape)")
        }
    }

    @Test("an unknown hook name is rejected with suggestions")
    func unknownHook() throws {
        let model = try ModelRegistry.load(Repository.model("tiny-llama"))
        let hooks = HookRun(cache: .names(["blocks.1.attn.hook_patern"]))
        let error = #expect(throws: ModelError.self) { try hooks.validate(against: model.hookNames, model: "tiny-llama") }
        #expect(error?.description.contains("blocks.1.attn.hook_pattern") == true, "\(String(describing: error))")
    }
}
