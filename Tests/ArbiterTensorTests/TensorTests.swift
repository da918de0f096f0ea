// Tensor construction from untrusted shapes, row views and unravel.
import ArbiterTensor
import PropertyBased
import Testing

@Suite("Tensor")
struct TensorTests {
    @Test("validatingShape accepts matching shapes, including scalars and empty tensors")
    func validShapes() throws {
        #expect(try Tensor(validatingShape: [2, 3], scalars: [Float](repeating: 0, count: 6)).shape == [2, 3])
        #expect(try Tensor(validatingShape: [], scalars: [5]).count == 1)
        #expect(try Tensor(validatingShape: [0, 4], scalars: []).count == 0)
    }

    @Test("validatingShape throws, naming the source, on mismatch, negative dimensions and overflow",
          arguments: [([2, 3], 5), ([2, 3], 7), ([-1, -6], 6), ([3, -2], 0), ([Int.max, 2], 0), ([1 << 32, 1 << 32], 0)])
    func invalidShapes(shape: [Int], count: Int) {
        let error = #expect(throws: TensorError.self) {
            try Tensor(validatingShape: shape, scalars: [Float](repeating: 0, count: count), source: "model.safetensors: w")
        }
        if case .invalidShape(let message) = error {
            #expect(message.contains("model.safetensors: w"), "message \(message) does not name the source")
        } else {
            Issue.record("expected invalidShape, got \(String(describing: error))")
        }
    }

    @Test("unravel inverts row-major flattening for random shapes")
    func unravelRoundTrip() async {
        await propertyCheck(count: 100, input: generator { rng in
            (0..<Int.random(in: 1...4, using: &rng)).map { _ in pick([1, 2, 3, 5, 7], &rng) }
        }) { shape in
            let count = shape.reduce(1, *)
            for i in 0..<count {
                let index = unravel(i, shape: shape)
                let inBounds = index.count == shape.count && zip(index, shape).allSatisfy { $0 >= 0 && $0 < $1 }
                let flat = zip(index, shape).reduce(0) { $0 * $1.1 + $1.0 }
                #expect(inBounds && flat == i, "unravel(\(i), \(shape)) = \(index)")
            }
        }
        #expect(unravel(5, shape: [2, 3]) == [1, 2])
        #expect(unravel(0, shape: []) == [])
    }

    @Test("rows, columns, row and rows(_:) view the last dimension")
    func views() {
        let t = Tensor(shape: [2, 2, 3], scalars: (0..<12).map(Float.init))
        #expect(t.rows == 4 && t.columns == 3 && t.rank == 3)
        #expect(Array(t.row(2)) == [6, 7, 8])
        #expect(t.rows(1..<3) == Tensor(shape: [2, 3], scalars: [3, 4, 5, 6, 7, 8]))
        #expect(t.reshaped([3, 4]).shape == [3, 4])
        #expect(Tensor(shape: [4], scalars: [1, 2, 3, 4]).rows == 1)
        var u = t
        u.scalars[7] = .infinity
        #expect(t.isFinite && !u.isFinite && u.firstNonFiniteIndex == 7)
    }
}
