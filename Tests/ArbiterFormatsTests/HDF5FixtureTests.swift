// Reading a file written by h5py (Fixtures/make_h5_fixture.py): the values are closed-form, recomputed here.
import ArbiterTensor
import Foundation
import Testing
@testable import ArbiterFormats

@Suite("HDF5 h5py fixture")
struct HDF5FixtureTests {
    let url = HDF5Fixtures.h5py

    @Test("lists root datasets only, sorted, dotted names included")
    func names() throws {
        let reader = try HDF5Reader(url: url)
        #expect(try reader.datasetNames() == [
            "blocks.0.attn.hook_pattern", "blocks.0.hook_resid_post", "hook_embed", "input_ids", "logits",
            "mask_u8", "positions", "scalar_value",
        ])
        #expect(!reader.contains("extras"))  // a group
        #expect(reader.contains("extras/nested"))  // a nested dataset is reachable by path, just not listed
        #expect(try reader.attributeNames() == [
            "case", "content_digests", "format_version", "model_id", "model_type", "prompt", "seed", "source",
            "temperature",
        ])
        #expect(try reader.attributeNames(of: "hook_embed") == ["layer", "scale", "tag", "units"])
    }

    @Test("float32, float64 (converted), gzip-chunked and scalar datasets")
    func floats() throws {
        let reader = try HDF5Reader(url: url)
        let (t, d, h, v) = (5, 4, 2, 7)
        #expect(try reader.readFloat32("hook_embed") ==
            Tensor(shape: [t, d], scalars: (0..<(t * d)).map { Float($0) * 0.5 - 3 }))
        let pattern = try reader.readFloat32("blocks.0.attn.hook_pattern")
        #expect(pattern.shape == [h, t, t])
        #expect(pattern.scalars == (0..<(h * t * t)).map { Float($0) / 100 })  // float32(i/100.0) both sides
        #expect(try reader.readFloat32("logits") ==
            Tensor(shape: [t, v], scalars: (0..<(t * v)).map { Float(Double($0) * 0.125 - 1) }))
        #expect(try reader.readFloat32("blocks.0.hook_resid_post") ==
            Tensor(shape: [t, d], scalars: (0..<(t * d)).map { Float($0) - 10 }))
        #expect(try reader.readFloat32("scalar_value") == Tensor(shape: [], scalars: [2.5]))
        #expect(try reader.shape(of: "logits") == [t, v])
    }

    @Test("int64, int32 and uint8 storage")
    func integers() throws {
        let reader = try HDF5Reader(url: url)
        let ids = try reader.readInt64("input_ids")
        #expect(ids.shape == [5] && ids.values == [1, 15043, 3186, 29892, 2])
        #expect(try reader.readInt32("input_ids").values == [1, 15043, 3186, 29892, 2])
        #expect(try reader.readInt64("positions").values == [0, 1, 2, 3, 4])
        #expect(try reader.readInt32("mask_u8").values == [1, 1, 1, 1, 1])
        #expect(expectHDF5Error(naming: url) { try reader.readFloat32("mask_u8") }?.kind == .unsupported)
        #expect(expectHDF5Error(naming: url) { try reader.readInt64("logits") }?.kind == .unsupported)
    }

    @Test("variable-length str and fixed-length bytes attributes, ints and floats")
    func attributes() throws {
        let reader = try HDF5Reader(url: url)
        #expect(try reader.intAttribute("format_version") == 2)
        #expect(try reader.stringAttribute("model_id") == "tiny-llama")
        #expect(try reader.stringAttribute("model_type") == "llama")  // numpy bytes: fixed-length
        #expect(try reader.stringAttribute("prompt") == "Décris l’image ✓")
        #expect(try reader.intAttribute("seed") == 1234)
        #expect(try reader.doubleAttribute("temperature") == 0.25)
        #expect(try reader.stringAttribute("units", of: "hook_embed") == "residual")
        #expect(try reader.stringAttribute("tag", of: "hook_embed") == "fixed")
        #expect(try reader.intAttribute("layer", of: "hook_embed") == -1)
        #expect(try reader.doubleAttribute("scale", of: "hook_embed") == 0.5)
    }

    @Test("the content digests h5py recorded (Tools/content_digests.py) are the ones Swift computes")
    func contentDigestsAgreeWithPython() throws {
        // Every kind the record covers: str and bytes attributes, int and float attributes, attributes on a
        // dataset, float32, float64, int64, int32 and uint8 storage, a gzip-chunked and a scalar dataset.
        let reader = try HDF5Reader(url: url)
        #expect(try reader.checkContentDigests())
        let recorded = try reader.stringAttribute(HDF5ContentDigests.attributeName)
        #expect(recorded == HDF5ContentDigests.record(try reader.currentContentEntries()))
        #expect(recorded.contains("dataset\tlogits\tfloat64\t5x7\t"))
        #expect(recorded.contains("dataset\tscalar_value\tfloat32\tscalar\t"))
        #expect(recorded.contains("attribute\thook_embed\ttag\tstring\t"))
    }
}
