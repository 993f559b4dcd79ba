//! The demo's drawing: panels of lines over one time axis, the spike
//! shaded, in an SVG file. Text is plain SVG `<text>`: no font library is
//! needed. Used by the single run (`pressure_demo.svg`) and by `--compare`
//! (`pressure_compare.svg`).

use plotters::prelude::*;

/// One line of a panel.
pub(crate) struct Line {
    pub(crate) label: String,
    pub(crate) color: RGBColor,
    pub(crate) points: Vec<(f64, f64)>,
}

/// One chart, stacked under the previous one.
pub(crate) struct Panel {
    /// Drawn above the panel (the first panel's is the plot's title).
    pub(crate) caption: Option<String>,
    pub(crate) y_desc: &'static str,
    pub(crate) y_max: f64,
    /// Height in pixels.
    pub(crate) height: u32,
    pub(crate) legend: SeriesLabelPosition,
    pub(crate) lines: Vec<Line>,
}

/// Draws `panels` from top to bottom, `width` pixels wide, over seconds
/// `0..x_max`, with the spike (`shade.0..shade.1` seconds) shaded.
pub(crate) fn draw(
    path: &str,
    width: u32,
    x_max: f64,
    shade: (f64, f64),
    panels: &[Panel],
) -> Result<(), Box<dyn std::error::Error>> {
    let height = panels.iter().map(|p| p.height).sum::<u32>();
    let root = SVGBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut rest = root.clone();
    for panel in panels {
        let (area, below) = rest.split_vertically(panel.height);
        rest = below;
        let mut builder = ChartBuilder::on(&area);
        if let Some(caption) = &panel.caption {
            builder.caption(caption, ("sans-serif", 18));
        }
        let mut chart = builder
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..x_max, 0.0..panel.y_max)?;
        chart.configure_mesh().x_desc("seconds").y_desc(panel.y_desc).draw()?;
        chart.draw_series([Rectangle::new(
            [(shade.0, 0.0), (shade.1, panel.y_max)],
            RGBColor(255, 235, 200).filled(),
        )])?;
        for line in &panel.lines {
            let color = line.color;
            chart
                .draw_series(LineSeries::new(line.points.iter().copied(), color.stroke_width(2)))?
                .label(line.label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(panel.legend.clone())
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
