import Foundation

/// A plain text table: a header row and left-aligned columns two spaces apart.
struct Table {
    /// Column titles.
    let header: [String]
    /// One array of cells per row.
    var rows: [[String]] = []

    /// A table with these column titles and no rows.
    init(_ header: String...) {
        self.header = header
    }

    /// A table with these column titles and no rows.
    init(columns header: [String]) {
        self.header = header
    }

    /// Appends a row.
    mutating func add(_ cells: String...) {
        rows.append(cells)
    }

    /// Appends a row.
    mutating func add(row cells: [String]) {
        rows.append(cells)
    }

    /// The table as lines, without a trailing newline.
    var text: String {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0.count > column ? $0[column].count : 0 }.max() ?? 0 }
        return all.map { row in
            row.indices.map { column in
                column == row.count - 1 ? row[column]
                    : row[column].padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
