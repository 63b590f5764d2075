//! The PNG chart a mail carries inline: the incident's series per minute around its
//! opening (red line), what the detector expected (blue line), and the incident's span
//! shaded. Drawn without text — every number it shows is written in the mail beside it —
//! so no font needs to be found on the machine.

use chrono::{DateTime, Utc};
use plotters::prelude::*;

pub const WIDTH: u32 = 600;
pub const HEIGHT: u32 = 200;

#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("drawing the chart failed: {0}")]
    Draw(String),
    #[error("encoding the chart failed: {0}")]
    Encode(#[from] png::EncodingError),
}

/// The chart as PNG bytes; `None` when the series has no points.
pub fn render(
    points: &[(DateTime<Utc>, i64)],
    opened_at: DateTime<Utc>,
    expected: Option<f64>,
) -> Result<Option<Vec<u8>>, ChartError> {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return Ok(None);
    };
    let minute = |at: DateTime<Utc>| (at - first.0).num_minutes() as f64;
    let x_max = minute(last.0).max(minute(opened_at)).max(1.0);
    let peak = points.iter().map(|p| p.1).max().unwrap_or(0) as f64;
    let y_max = peak.max(expected.unwrap_or(0.0)).max(1.0) * 1.1;
    let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    draw(
        &mut rgb,
        points,
        minute,
        (x_max, y_max),
        minute(opened_at),
        expected,
    )
    .map_err(ChartError::Draw)?;
    Ok(Some(encode(&rgb)?))
}

fn draw(
    rgb: &mut [u8],
    points: &[(DateTime<Utc>, i64)],
    minute: impl Fn(DateTime<Utc>) -> f64,
    (x_max, y_max): (f64, f64),
    opened: f64,
    expected: Option<f64>,
) -> Result<(), String> {
    let text = |e: &dyn std::fmt::Display| e.to_string();
    let root = BitMapBackend::with_buffer(rgb, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| text(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .margin(8)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(|e| text(&e))?;
    chart
        .draw_series(std::iter::once(Rectangle::new(
            [(opened, 0.0), (x_max, y_max)],
            RGBColor(255, 232, 232).filled(),
        )))
        .map_err(|e| text(&e))?;
    if let Some(expected) = expected {
        chart
            .draw_series(LineSeries::new(
                [(0.0, expected), (x_max, expected)],
                BLUE.stroke_width(1),
            ))
            .map_err(|e| text(&e))?;
    }
    chart
        .draw_series(LineSeries::new(
            points
                .iter()
                .map(|(at, events)| (minute(*at), *events as f64)),
            RED.stroke_width(2),
        ))
        .map_err(|e| text(&e))?;
    chart
        .draw_series(std::iter::once(PathElement::new(
            [(0.0, 0.0), (x_max, 0.0)],
            BLACK.stroke_width(1),
        )))
        .map_err(|e| text(&e))?;
    root.present().map_err(|e| text(&e))?;
    Ok(())
}

fn encode(rgb: &[u8]) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spike_draws_a_png_with_red_in_it() {
        let base = DateTime::from_timestamp(1_800_000_000, 0).expect("a time");
        let points: Vec<_> = (0..40)
            .map(|m| {
                (
                    base + chrono::TimeDelta::minutes(m),
                    if m >= 30 { 90 } else { 3 },
                )
            })
            .collect();
        let png_bytes = render(&points, base + chrono::TimeDelta::minutes(30), Some(3.0))
            .expect("drawn")
            .expect("points");
        assert_eq!(&png_bytes[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(png_bytes.as_slice());
        let mut reader = decoder.read_info().expect("a PNG");
        let mut pixels = vec![0; reader.output_buffer_size()];
        reader.next_frame(&mut pixels).expect("a frame");
        let red = pixels
            .chunks(3)
            .filter(|p| p[0] > 200 && p[1] < 60 && p[2] < 60)
            .count();
        assert!(red > 100, "the series line is drawn ({red} red pixels)");
        assert_eq!(render(&[], base, None).expect("nothing to draw"), None);
    }
}
