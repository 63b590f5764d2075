// Seismo's dashboards as Grafana's own TypeScript types (@grafana/schema) see them.
//
// Grafana types a panel's `options`, `fieldConfig.defaults.custom` and `targets` loosely
// (records of unknown), because each panel plugin and datasource defines its own. Here a
// panel is a union over the panel types Seismo uses, each with that plugin's generated
// Options/FieldConfig types, and a target is a Prometheus or PostgreSQL query: an unknown
// panel type, a misspelt option or a malformed query fails the check.
import type * as schema from '@grafana/schema';
import type * as Stat from '@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen';
import type * as Table from '@grafana/schema/dist/esm/raw/composable/table/panelcfg/x/TablePanelCfg_types.gen';
import type * as Text from '@grafana/schema/dist/esm/raw/composable/text/panelcfg/x/TextPanelCfg_types.gen';
import type * as TimeSeries from '@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen';

/** JSON holds enum values as plain strings: map each string enum to its literal values. */
export type Json<T> = T extends string
  ? `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends Array<infer U>
      ? Array<Json<U>>
      : T extends object
        ? { [K in keyof T]: Json<T[K]> }
        : T;

/** The two datasources of dashboards/provisioning/datasources/seismo.yaml, by uid only. */
export type PrometheusRef = { type: 'prometheus'; uid: 'seismo-prometheus' };
export type PostgresRef = { type: 'grafana-postgresql-datasource'; uid: 'seismo-postgres' };
export type GrafanaRef = { type: 'grafana'; uid: '-- Grafana --' };

export type PrometheusQuery = {
  datasource: PrometheusRef;
  refId: string;
  expr: string;
  legendFormat?: string;
  editorMode?: 'code' | 'builder';
  range?: boolean;
  instant?: boolean;
  interval?: string;
  format?: 'time_series' | 'table' | 'heatmap';
};

export type PostgresQuery = {
  datasource: PostgresRef;
  refId: string;
  rawSql: string;
  rawQuery: true;
  format: 'time_series' | 'table';
  editorMode?: 'code' | 'builder';
};

export type Query = PrometheusQuery | PostgresQuery;

type PanelBase = Omit<Json<schema.Panel>, 'type' | 'options' | 'fieldConfig' | 'targets' | 'datasource'> & {
  datasource: PrometheusRef | PostgresRef;
  targets: Array<Query>;
};

type FieldConfigSource<Custom> = Omit<Json<schema.FieldConfigSource>, 'defaults'> & {
  defaults: Omit<Json<schema.FieldConfig>, 'custom'> & { custom?: Json<Custom> };
};

export type TimeSeriesPanel = PanelBase & {
  type: 'timeseries';
  options: Json<TimeSeries.Options>;
  fieldConfig: FieldConfigSource<TimeSeries.FieldConfig>;
};

export type StatPanel = PanelBase & {
  type: 'stat';
  options: Json<Stat.Options>;
  fieldConfig: FieldConfigSource<Record<string, never>>;
};

export type TablePanel = PanelBase & {
  type: 'table';
  options: Json<Table.Options>;
  fieldConfig: FieldConfigSource<Table.FieldConfig>;
};

export type TextPanel = Omit<PanelBase, 'datasource' | 'targets'> & {
  type: 'text';
  options: Json<Text.Options>;
};

export type RowPanel = Json<schema.RowPanel> & { panels: [] };

export type KnownPanel = TimeSeriesPanel | StatPanel | TablePanel | TextPanel | RowPanel;

/** A dashboard annotation: Grafana's built-in one, or incidents from PostgreSQL. */
export type Annotation =
  | (Json<schema.AnnotationQuery> & { builtIn: 1; datasource: GrafanaRef })
  | (Omit<Json<schema.AnnotationQuery>, 'target' | 'datasource'> & {
      datasource: PostgresRef;
      target: PostgresQuery;
    });

export type Variable = Omit<Json<schema.VariableModel>, 'datasource'> & {
  datasource?: PrometheusRef | PostgresRef;
};

export type SeismoDashboard = Omit<Json<schema.Dashboard>, 'panels' | 'annotations' | 'templating' | 'uid'> & {
  uid: `seismo-${string}`;
  panels: Array<KnownPanel>;
  annotations: { list: Array<Annotation> };
  templating: { list: Array<Variable> };
};
