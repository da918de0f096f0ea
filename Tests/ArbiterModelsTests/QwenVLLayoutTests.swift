// Window reordering, vision positions and the 3-D rope index against values printed by transformers 5.24
// (vision_utils.get_vision_window_index, Qwen2_5_VLModel.get_rope_index).
import ArbiterFormats
import ArbiterModels
import Foundation
import PropertyBased
import Testing

@Suite("Qwen-VL token layout")
struct QwenVLLayoutTests {
    struct WindowCase: Sendable, CustomStringConvertible {
        let grids: [VisionGrid]
        let side: Int
        let order: [Int]
        let segments: [Int]
        var description: String { "\(grids) side \(side)" }
    }

    // get_vision_window_index(grid_thw, spatial_merge_size, window_size, patch_size); side = window // merge // patch.
    static let windowCases: [WindowCase] = [
        WindowCase(grids: [VisionGrid(t: 1, h: 8, w: 12)], side: 3,
                   order: [0, 1, 2, 6, 7, 8, 12, 13, 14, 3, 4, 5, 9, 10, 11, 15, 16, 17, 18, 19, 20, 21, 22, 23],
                   segments: [0, 36, 72, 84, 96]),
        WindowCase(grids: [VisionGrid(t: 1, h: 16, w: 20)], side: 4,
                   order: [0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23, 30, 31, 32, 33, 4, 5, 6, 7, 14, 15, 16, 17, 24,
                           25, 26, 27, 34, 35, 36, 37, 8, 9, 18, 19, 28, 29, 38, 39, 40, 41, 42, 43, 50, 51, 52, 53, 60,
                           61, 62, 63, 70, 71, 72, 73, 44, 45, 46, 47, 54, 55, 56, 57, 64, 65, 66, 67, 74, 75, 76, 77,
                           48, 49, 58, 59, 68, 69, 78, 79],
                   segments: [0, 64, 128, 160, 224, 288, 320]),
        WindowCase(grids: [VisionGrid(t: 1, h: 8, w: 12), VisionGrid(t: 1, h: 4, w: 6)], side: 2,
                   order: [0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11, 12, 13, 18, 19, 14, 15, 20, 21, 16, 17, 22, 23, 24, 25,
                           27, 28, 26, 29],
                   segments: [0, 16, 32, 48, 64, 80, 96, 112, 120]),
        WindowCase(grids: [VisionGrid(t: 2, h: 8, w: 8)], side: 2,
                   order: [0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15, 16, 17, 20, 21, 18, 19, 22, 23, 24, 25,
                           28, 29, 26, 27, 30, 31],
                   segments: [0, 16, 32, 48, 64, 80, 96, 112, 128]),
    ]

    @Test("window order and cu_window_seqlens equal get_vision_window_index", arguments: windowCases)
    func windows(_ c: WindowCase) {
        let layout = QwenVisionLayout(grids: c.grids, mergeSize: 2, windowSide: c.side)
        #expect(layout.order == c.order)
        #expect(layout.windowSegments == c.segments)
        let frames = c.grids.flatMap { g in Array(repeating: g.h * g.w, count: g.t) }
        #expect(layout.fullSegments == frames.reduce(into: [0]) { $0.append($0.last! + $1) })
    }

    @Test("without windows the order is the identity and positions follow merge blocks")
    func noWindows() {
        let layout = QwenVisionLayout(grids: [VisionGrid(t: 1, h: 4, w: 6)], mergeSize: 2, windowSide: nil)
        #expect(layout.order == Array(0..<6))
        #expect(layout.windowSegments == [0, 24])
        // get_vision_position_ids: (block row, block column, row in block, column in block).
        #expect(Array(layout.heightPositions.prefix(8)) == [0, 0, 1, 1, 0, 0, 1, 1])
        #expect(Array(layout.widthPositions.prefix(8)) == [0, 1, 0, 1, 2, 3, 2, 3])
    }

    @Test("window layouts are permutations of whole merge units covering every patch once")
    func windowProperties() async {
        await propertyCheck(count: 60, input: Gen.int(in: 1...8), Gen.int(in: 1...8), Gen.int(in: 1...4), Gen.int(in: 1...2)) { h, w, side, t in
            let grid = VisionGrid(t: t, h: 2 * h, w: 2 * w)
            let layout = QwenVisionLayout(grids: [grid], mergeSize: 2, windowSide: side)
            #expect(layout.order.sorted() == Array(0..<(t * h * w)))
            #expect(layout.windowSegments.first == 0 && layout.windowSegments.last == grid.patches)
            #expect(zip(layout.windowSegments, layout.windowSegments.dropFirst()).allSatisfy { $0 < $1 && ($1 - $0) % 4 == 0 })
            #expect(zip(layout.windowSegments, layout.windowSegments.dropFirst()).allSatisfy { $1 - $0 <= 4 * side * side })
            // Positions are a permutation of the processor-order positions.
            let plain = QwenVisionLayout(grids: [grid], mergeSize: 2, windowSide: nil)
            let pairs = zip(layout.heightPositions, layout.widthPositions).map { [$0, $1] }
            let plainPairs = zip(plain.heightPositions, plain.widthPositions).map { [$0, $1] }
            #expect(pairs.sorted { $0.lexicographicallyPrecedes($1) } == plainPairs.sorted { $0.lexicographicallyPrecedes($1) })
        }
    }

    @Test("two images with text between: positions equal get_rope_index")
    func ropeIndexTwoImages() throws {
        let model = try QwenVLFixtures.load("tiny-qwen2_5-vl")
        let image = model.configuration.imageTokenID
        #expect(image == 305)
        let ids = [1, 2, 303] + Array(repeating: image, count: 6) + [304, 5, 6, 7, 303] + Array(repeating: image, count: 2) + [304, 9]
        let positions = try model.positionIDs(ids: ids, grids: [VisionGrid(t: 1, h: 4, w: 6), VisionGrid(t: 1, h: 2, w: 4)])
        #expect(positions.axes == [
            [0, 1, 2, 3, 3, 3, 3, 3, 3, 6, 7, 8, 9, 10, 11, 11, 13, 14],
            [0, 1, 2, 3, 3, 3, 4, 4, 4, 6, 7, 8, 9, 10, 11, 11, 13, 14],
            [0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14],
        ])
    }

    @Test("a text-only prompt gets sequential positions on all axes (the same rotary as 1-D positions)")
    func textOnly() throws {
        let model = try QwenVLFixtures.load("tiny-qwen2-vl")
        let ids = [301, 10, 20, 30, 302]
        #expect(try model.positionIDs(ids: ids, grids: []).axes == Array(repeating: Array(0..<5), count: 3))
        let a = try model.forward(ids: ids, pixelValues: nil, grids: []).logits
        let b = try model.decoder.forward(ids: ids, positions: try PositionIDs(axes: Array(repeating: Array(0..<5), count: 3))).logits
        #expect(a != nil && a == b)
    }
}
