// HDF5Writer → HDF5Reader round trips of every dtype and attribute type, and the errors of wrong requests.
import ArbiterTensor
import Foundation
import PropertyBased
import Testing
@testable import ArbiterFormats

@Suite("HDF5 round trip")
struct HDF5RoundTripTests {
    @Test("float32, int64 and int32 datasets of several shapes come back bit-exact")
    func datasets() throws {
        let folder = try HDF5ScratchFolder()
        defer { folder.remove() }
        let url = folder.file("round.h5")
        let matrix = HDF5Fixtures.ramp([3, 4])
        let special = Tensor(shape: [6], scalars: [0, -0.0, .infinity, -.infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude])
        let scalar = Tensor(shape: [], scalars: [42.5])
        let empty = Tensor(shape: [0, 3], scalars: [])
        let int64s: [Int64] = [.min, -1, 0, 1, .max, 1 << 40]
        let int32s: [Int32] = [.min, -7, 0, 7, .max, 12]
        let writer = try HDF5Writer(url: url)
        try writer.write("blocks.0.attn.hook_pattern", HDF5Fixtures.ramp([2, 3, 3], scale: 0.01))
        try writer.write("matrix", matrix)
        try writer.write("special", special)
        try writer.write("scalar", scalar)
        try writer.write("empty", empty)
        try writer.write("wide", int64: int64s, shape: [2, 3])
        try writer.write("narrow", int32: int32s, shape: [3, 2])
        try writer.commit()

        let reader = try HDF5Reader(url: url)
        #expect(try reader.datasetNames() == ["blocks.0.attn.hook_pattern", "empty", "matrix", "narrow", "scalar", "special", "wide"])
        #expect(try reader.readFloat32("matrix") == matrix)
        #expect(try reader.readFloat32("blocks.0.attn.hook_pattern") == HDF5Fixtures.ramp([2, 3, 3], scale: 0.01))
        let readSpecial = try reader.readFloat32("special")
        #expect(readSpecial.scalars.map(\.bitPattern) == special.scalars.map(\.bitPattern))
        #expect(try reader.readFloat32("scalar") == scalar)
        #expect(try reader.readFloat32("empty") == empty)
        #expect(try reader.shape(of: "empty") == [0, 3])
        #expect(try reader.shape(of: "scalar") == [])
        let wide = try reader.readInt64("wide")
        #expect(wide.shape == [2, 3] && wide.values == int64s)
        let narrow = try reader.readInt32("narrow")
        #expect(narrow.shape == [3, 2] && narrow.values == int32s)
        // int32 storage widens to Int64; int64 storage narrows to Int32 only when every value fits.
        #expect(try reader.readInt64("narrow").values == int32s.map(Int64.init))
        let error = expectHDF5Error(naming: url) { try reader.readInt32("wide") }
        #expect(error?.problem.contains("does not fit in int32") == true)
        #expect(reader.contains("matrix") && !reader.contains("absent") && !reader.contains(""))
    }

    @Test("float32 tensors of random shapes and values round trip exactly")
    func randomTensors() async throws {
        let folder = try HDF5ScratchFolder()
        defer { folder.remove() }
        let shapes = Gen.int(in: 0...5).array(of: 0...4)
        await propertyCheck(count: 40, input: shapes, Gen.float(in: -1e6...1e6)) { shape, scale in
            let count = shape.reduce(1, *)
            let tensor = Tensor(shape: shape, scalars: (0..<count).map { Float($0 % 97) * scale / 97 })
            let url = folder.file("random-\(UUID().uuidString).h5")
            let writer = try HDF5Writer(url: url)
            try writer.write("t", tensor)
            try writer.write("ids", int64: (0..<count).map { Int64($0) * Int64(scale) }, shape: shape)
            try writer.commit()
            let reader = try HDF5Reader(url: url)
            #expect(try reader.readFloat32("t") == tensor)
            #expect(try reader.shape(of: "ids") == shape)
            #expect(try reader.readInt64("ids").values == (0..<count).map { Int64($0) * Int64(scale) })
        }
    }

    @Test("string, int and double attributes on the root and on datasets round trip")
    func attributes() throws {
        let folder = try HDF5ScratchFolder()
        defer { folder.remove() }
        let url = folder.file("attributes.h5")
        let writer = try HDF5Writer(url: url)
        try writer.setAttribute("ascii", "tiny-llama")
        try writer.setAttribute("unicode", "Décris l’image ✓ 🦙")
        try writer.setAttribute("empty", "")
        try writer.setAttribute("big", Int.max)
        try writer.setAttribute("small", Int.min)
        try writer.setAttribute("ratio", 1e-300)
        try writer.setAttribute("negative_zero", -0.0)
        try writer.setAttribute("replaced", "first")
        try writer.setAttribute("replaced", 2)  // replacing changes the type too
        try writer.write("hook_embed", HDF5Fixtures.ramp([2, 2]))
        try writer.setAttribute("units", "residual", on: "hook_embed")
        try writer.setAttribute("layer", -3, on: "hook_embed")
        try writer.setAttribute("scale", 0.5, on: "hook_embed")
        try writer.commit()

        let reader = try HDF5Reader(url: url)
        #expect(try reader.attributeNames() == ["ascii", "big", "content_digests", "empty", "negative_zero", "ratio",
                                                 "replaced", "small", "unicode"])
        // The record the writer kept as it wrote (an attribute replaced by another type included) is what the
        // reader recomputes from the file.
        #expect(try reader.checkContentDigests())
        #expect(try reader.attributeNames(of: "hook_embed") == ["layer", "scale", "units"])
        #expect(try reader.stringAttribute("ascii") == "tiny-llama")
        #expect(try reader.stringAttribute("unicode") == "Décris l’image ✓ 🦙")
        #expect(try reader.stringAttribute("empty") == "")
        #expect(try reader.intAttribute("big") == Int.max)
        #expect(try reader.intAttribute("small") == Int.min)
        #expect(try reader.doubleAttribute("ratio") == 1e-300)
        #expect(try reader.doubleAttribute("negative_zero").sign == .minus)
        #expect(try reader.intAttribute("replaced") == 2)
        #expect(try reader.doubleAttribute("replaced") == 2.0)  // integers widen to Double
        #expect(try reader.stringAttribute("units", of: "hook_embed") == "residual")
        #expect(try reader.intAttribute("layer", of: "hook_embed") == -3)
        #expect(try reader.doubleAttribute("scale", of: "hook_embed") == 0.5)
        #expect(reader.hasAttribute("units", of: "hook_embed") && !reader.hasAttribute("units") && !reader.hasAttribute("x", of: "nope"))
    }

    @Test("wrong dtypes, missing names and non-scalar attributes are errors naming the file")
    func wrongRequests() throws {
        let folder = try HDF5ScratchFolder()
        defer { folder.remove() }
        let url = folder.file("wrong.h5")
        let writer = try HDF5Writer(url: url)
        try writer.write("ids", int64: [1, 2], shape: [2])
        try writer.write("x", HDF5Fixtures.ramp([2]))
        try writer.setAttribute("text", "a")
        try writer.setAttribute("number", 1.5)
        try writer.commit()
        let reader = try HDF5Reader(url: url)

        #expect(expectHDF5Error(naming: url) { try reader.readFloat32("ids") }?.kind == .unsupported)
        #expect(expectHDF5Error(naming: url) { try reader.readInt64("x") }?.kind == .unsupported)
        let missing = expectHDF5Error(naming: url) { try reader.readFloat32("blocks.9.hook_resid_post") }
        #expect(missing?.kind == .missing)
        #expect(missing?.problem.contains("available: ids, x") == true)
        #expect(expectHDF5Error(naming: url) { try reader.shape(of: "nope") }?.kind == .missing)
        #expect(expectHDF5Error(naming: url) { try reader.intAttribute("text") }?.kind == .unsupported)
        #expect(expectHDF5Error(naming: url) { try reader.intAttribute("number") }?.kind == .unsupported)
        #expect(expectHDF5Error(naming: url) { try reader.stringAttribute("number") }?.kind == .unsupported)
        #expect(expectHDF5Error(naming: url) { try reader.doubleAttribute("text") }?.kind == .unsupported)
        let absent = expectHDF5Error(naming: url) { try reader.stringAttribute("model_id") }
        #expect(absent?.kind == .missing && absent?.problem.contains("number, text") == true)
        #expect(expectHDF5Error(naming: url) { try reader.stringAttribute("a", of: "nope") }?.kind == .missing)
        #expect(expectHDF5Error(naming: url) { try reader.attributeNames(of: "nope") }?.kind == .missing)
    }

    @Test("the writer refuses bad names, shape mismatches, duplicates and use after commit")
    func writerErrors() throws {
        let folder = try HDF5ScratchFolder()
        defer { folder.remove() }
        let url = folder.file("bad.h5")
        let writer = try HDF5Writer(url: url)
        expectHDF5Error(naming: url) { try writer.write("a/b", HDF5Fixtures.ramp([1])) }
        expectHDF5Error(naming: url) { try writer.write("", HDF5Fixtures.ramp([1])) }
        expectHDF5Error(naming: url) { try writer.write("ids", int64: [1, 2, 3], shape: [2, 2]) }
        expectHDF5Error(naming: url) { try writer.write("ids", int32: [1], shape: [-1]) }
        expectHDF5Error(naming: url) { try writer.write("huge", int64: [], shape: [1 << 40, 1 << 40]) }
        try writer.write("x", HDF5Fixtures.ramp([2]))
        #expect(expectHDF5Error(naming: url) { try writer.write("x", HDF5Fixtures.ramp([2])) }?.kind == .unexpected)
        #expect(expectHDF5Error(naming: url) { try writer.setAttribute("a", 1, on: "y") }?.kind == .missing)
        expectHDF5Error(naming: url) { try writer.setAttribute("", 1) }
        try writer.commit()
        expectHDF5Error(naming: url) { try writer.write("z", HDF5Fixtures.ramp([2])) }
        expectHDF5Error(naming: url) { try writer.setAttribute("a", "b") }
        expectHDF5Error(naming: url) { try writer.commit() }
        #expect(try HDF5Reader(url: url).datasetNames() == ["x"])

        let nowhere = folder.file("no-such-folder/out.h5")
        expectHDF5Error(naming: nowhere) { try HDF5Writer(url: nowhere) }
    }

    @Test("readers and writers on many threads at once do not interfere")
    func concurrentUse() async throws {
        let folder = try HDF5ScratchFolder()
        defer { folder.remove() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<8 {
                group.addTask {
                    let url = folder.file("parallel-\(index).h5")
                    let tensor = HDF5Fixtures.ramp([16, 8], offset: Float(index))
                    let writer = try HDF5Writer(url: url)
                    try writer.write("t", tensor)
                    try writer.setAttribute("index", index)
                    try writer.commit()
                    let reader = try HDF5Reader(url: url)
                    #expect(try reader.readFloat32("t") == tensor)
                    #expect(try reader.intAttribute("index") == index)
                }
            }
            try await group.waitForAll()
        }
    }

    @Test("content digests: a record past one attribute's room is refused at commit, nothing written; exports opt out")
    func contentDigestLimit() throws {
        let folder = try HDF5ScratchFolder()
        defer { folder.remove() }
        let url = folder.file("many.h5")
        let writer = try HDF5Writer(url: url)
        for i in 0..<900 { try writer.write("blocks.\(i).attn.hook_pattern_with_a_long_name", HDF5Fixtures.ramp([1])) }
        let error = expectHDF5Error(naming: url) { try writer.commit() }
        #expect(error?.kind == .tooLarge)
        #expect(error?.problem.contains("over the 60000-byte limit") == true, "\(String(describing: error))")
        #expect(try folder.contents() == [])  // neither the file nor its temporary
        let export = folder.file("export.h5")
        let plain = try HDF5Writer(url: export, contentDigests: false)
        for i in 0..<900 { try plain.write("d\(i)", HDF5Fixtures.ramp([1])) }
        try plain.commit()
        let reader = try HDF5Reader(url: export)
        #expect(try reader.datasetNames().count == 900)
        #expect(try reader.recordedContentDigests() == nil)
        #expect(try reader.checkContentDigests() == false)
    }
}
