// Selecting bf16 compute: ARBITER_COMPUTE, the load option, what it does to the weights, and its refusals.
import ArbiterFormats
@testable import ArbiterModels
import ArbiterTensor
import Foundation
import Testing

@Suite("Compute precision")
struct ComputePrecisionTests {
    @Test("ARBITER_COMPUTE: unset or empty is f32; f32/bf16 in any case; anything else refused, naming it")
    func environment() throws {
        #expect(try ComputePrecision.fromEnvironment([:]) == .float32)
        #expect(try ComputePrecision.fromEnvironment(["ARBITER_COMPUTE": ""]) == .float32)
        #expect(try ComputePrecision.fromEnvironment(["ARBITER_COMPUTE": "bf16"]) == .bfloat16)
        #expect(try ComputePrecision.fromEnvironment(["ARBITER_COMPUTE": "BF16"]) == .bfloat16)
        #expect(try ComputePrecision.fromEnvironment(["ARBITER_COMPUTE": "f32"]) == .float32)
        let error = #expect(throws: ModelError.self) {
            try ComputePrecision.fromEnvironment(["ARBITER_COMPUTE": "fp8"])
        }
        #expect(error?.description.contains("ARBITER_COMPUTE=fp8") == true, "\(String(describing: error))")
        #expect(error?.description.contains("f32 or bf16") == true, "\(String(describing: error))")
    }

    @Test("bf16 load: every tensor bf16 and marked (f32 checkpoint rounded once); f32 load leaves them as stored")
    func loadMarksWeights() throws {
        let f32 = try ModelRegistry.load(Repository.model("tiny-llama"), compute: .float32)
        let bf16 = try ModelRegistry.load(Repository.model("tiny-llama"), compute: .bfloat16)
        let plain = f32.decoder.unembedding, rounded = bf16.decoder.unembedding
        #expect(plain.dtype == .float32 && !plain.computesInBFloat16)
        #expect(rounded.dtype == .bfloat16 && rounded.computesInBFloat16)
        let values = plain.toTensor().scalars, held = rounded.toTensor().scalars
        #expect(values.count == held.count)
        #expect(zip(values, held).allSatisfy { bfloat16ToFloat(floatToBFloat16($0)).bitPattern == $1.bitPattern },
                "the bf16 weights are not the f32 ones rounded to nearest even")
        let layer = bf16.decoder.blocks[0]
        #expect([layer.attention.qProj, layer.attention.oProj, layer.mlp.downProj].allSatisfy {
            $0.computesInBFloat16 && $0.dtype == .bfloat16
        })
        // ModelSession passes the option on.
        let session = try ModelSession(directory: Repository.model("arbiter-main"), compute: .bfloat16)
        #expect(session.model.decoder.unembedding.computesInBFloat16)
    }

    @Test("a checkpoint value bf16 cannot hold is refused at a bf16 load, naming the folder and the tensor")
    func overflowRefused() throws {
        let tensor = StoredTensor(name: "model.layers.0.mlp.up_proj.weight",
                                  Tensor(shape: [1, 2], scalars: [1, 3.4e38]))
        let tensors = ["model.layers.0.mlp.up_proj.weight": tensor]
        #expect(try ComputePrecision.float32.tensors(tensors, source: "/models/x").count == 1)
        let error = #expect(throws: FormatError.self) {
            try ComputePrecision.bfloat16.tensors(tensors, source: "/models/x")
        }
        #expect(error?.file == "/models/x", "\(String(describing: error))")
        #expect(error?.problem.contains("model.layers.0.mlp.up_proj.weight") == true, "\(String(describing: error))")
        #expect(error?.problem.contains("ARBITER_COMPUTE=bf16") == true, "\(String(describing: error))")
    }

    @Test("a renamed tensor keeps its bf16-compute mark")
    func renameKeepsMark() throws {
        let tensor = StoredTensor(name: "old", Tensor(shape: [2, 2], scalars: [1, 2, 3, 4])).forBFloat16Compute()!
        var store = WeightStore(["old": tensor], source: "test")
        try store.rename("old", to: "new")
        #expect(try store.take("new", shape: [2, 2]).computesInBFloat16)
    }
}
